/**
 * The "Polaris" inline completion provider: ghost text from the Polaris server
 * in notebook cells and file editors, streamed as the model writes it.
 *
 * `fetch` waits the debounce, sends the text around the cursor and returns the
 * first piece of the suggestion as an incomplete item; JupyterLab then calls
 * `stream` with its token, which yields the growing suggestion until the
 * server's `end` line. A new request from the same editor aborts the previous
 * fetch at once: the connection closes, and the server cancels that completion
 * and closes its model stream. Accept (Tab) and dismiss (Escape) are
 * JupyterLab's own keys. What became of a suggestion is reported to the
 * server's metrics (POST /completions/{id}/feedback) once its stream finished
 * (the server keeps only finished ones): shown, then accepted (the accept
 * command ran, or the next request's text starts with the suggestion) or
 * dismissed (the next request's text does not).
 */

import type {
  CompletionHandler,
  IInlineCompletionContext,
  IInlineCompletionItem,
  IInlineCompletionList,
  IInlineCompletionProvider
} from '@jupyterlab/completer';
import { InlineCompletionTriggerKind } from '@jupyterlab/completer';
import { ServerConnection } from '@jupyterlab/services';
import type { LabIcon } from '@jupyterlab/ui-components';

import type { PolarisClient } from '../api';
import type { components } from '../generated/openapi';
import { ndjsonLines } from './ndjson';
import { buildRequest, editorIdOf } from './request';

type CompletionLine = components['schemas']['CompletionLine'];

export const PROVIDER_ID = 'polaris-jupyter:inline';

/** The settings of schema/completer.json. */
export interface ICompleterSettings {
  enabled: boolean;
  debounceMs: number;
  maxSuggestionChars: number;
  provider: string;
  model: string;
}

export const DEFAULT_SETTINGS: ICompleterSettings = {
  enabled: true,
  debounceMs: 250,
  maxSuggestionChars: 400,
  provider: '',
  model: ''
};

/** Roughly three characters a token: the model need not write what would be cut anyway. */
const CHARS_PER_TOKEN = 3;
const MAX_TOKENS = 2048;

interface IActive {
  id: string;
  editorId: string;
  prefix: string;
  text: string;
  lines: AsyncGenerator<CompletionLine>;
  controller: AbortController;
  done: boolean;
  /** The server's end line said COMPLETED: feedback about it can be sent. */
  finished: boolean;
  outcome: 'accepted' | 'dismissed' | null;
  reported: boolean;
}

const EMPTY: IInlineCompletionList = { items: [] };

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise(resolve => {
    if (signal.aborted) {
      resolve(false);
      return;
    }
    const timer = setTimeout(() => resolve(!signal.aborted), ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

export class PolarisInlineProvider implements IInlineCompletionProvider {
  readonly name = 'Polaris';
  readonly identifier = PROVIDER_ID;
  /** JupyterLab's own per-provider settings: no second debounce, fill in the middle too. */
  readonly schema = { default: { debouncerDelay: 0, timeout: 15000, autoFillInMiddle: true } };
  settings: ICompleterSettings = { ...DEFAULT_SETTINGS };

  private _inflight = new Map<string, AbortController>();
  private _streams = new Map<string, IActive>();
  /** The last suggestion shown, until the next request tells what became of it. */
  private _shown: IActive | null = null;

  constructor(
    private readonly _client: PolarisClient,
    readonly icon?: LabIcon.ILabIcon
  ) {}

  async fetch(request: CompletionHandler.IRequest, context: IInlineCompletionContext): Promise<IInlineCompletionList> {
    const editorId = editorIdOf(context.widget);
    this._inflight.get(editorId)?.abort(); // supersede: the server sees the connection go
    const settings = this.settings;
    if (!settings.enabled) {
      return EMPTY;
    }
    const controller = new AbortController();
    this._inflight.set(editorId, controller);
    if (context.triggerKind === InlineCompletionTriggerKind.Automatic && settings.debounceMs > 0) {
      if (!(await sleep(settings.debounceMs, controller.signal))) {
        return EMPTY;
      }
    }
    const maxTokens = Math.max(1, Math.min(MAX_TOKENS, Math.ceil(settings.maxSuggestionChars / CHARS_PER_TOKEN)));
    const body = buildRequest(request, context.widget, { provider: settings.provider, model: settings.model, maxTokens });
    this._judgeShown(editorId, body.prefix);
    try {
      const response = await ServerConnection.makeRequest(
        this._client.url('completions'),
        { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' }, signal: controller.signal },
        this._client.settings
      );
      if (!response.ok || !response.body) {
        const text = await response.text().catch(() => '');
        let message = text;
        try {
          message = JSON.parse(text).message ?? text;
        } catch {
          // not JSON: keep the text
        }
        console.warn(`Polaris inline completion: ${response.status} ${message}`);
        return EMPTY;
      }
      const active: IActive = {
        id: '',
        editorId,
        prefix: body.prefix,
        text: '',
        lines: ndjsonLines<CompletionLine>(response.body),
        controller,
        done: false,
        finished: false,
        outcome: null,
        reported: false
      };
      // Until the first piece (or the end): the ghost text appears with text in it.
      for (;;) {
        const { value: line, done } = await active.lines.next();
        if (done || !this._apply(active, line)) {
          active.done = true;
          break;
        }
        if (active.text) {
          break;
        }
      }
      if (!active.text || controller.signal.aborted) {
        this._close(active);
        return EMPTY;
      }
      this._shown = active;
      const item: IInlineCompletionItem = { insertText: active.text, isIncomplete: !active.done };
      if (!active.done) {
        item.token = active.id;
        this._streams.set(active.id, active);
      } else {
        this._close(active);
      }
      return { items: [item] };
    } catch (error) {
      if (!controller.signal.aborted) {
        console.warn('Polaris inline completion failed', error);
      }
      return EMPTY;
    }
  }

  async *stream(token: string): AsyncGenerator<{ response: IInlineCompletionItem }> {
    const active = this._streams.get(token);
    if (!active) {
      return;
    }
    try {
      while (!active.done) {
        const { value: line, done } = await active.lines.next();
        if (done || !this._apply(active, line)) {
          break;
        }
        if (line.type === 'delta') {
          yield { response: { insertText: active.text, isIncomplete: true } };
        }
      }
    } catch (error) {
      if (!active.controller.signal.aborted) {
        console.warn('Polaris inline completion stream failed', error);
      }
    } finally {
      this._close(active);
    }
  }

  /** The user accepted the suggestion on screen (JupyterLab's accept command ran). */
  accepted(): void {
    if (this._shown) {
      this._decide(this._shown, 'accepted');
    }
  }

  feedback(id: string, event: 'shown' | 'accepted' | 'dismissed'): Promise<unknown> {
    return this._client
      .request('POST', `completions/${encodeURIComponent(id)}/feedback`, { event })
      .catch(() => undefined); // best effort: metrics only
  }

  dispose(): void {
    for (const controller of this._inflight.values()) {
      controller.abort();
    }
    this._inflight.clear();
    this._streams.clear();
  }

  /** One line into the suggestion; false when the stream is over (end, error, or long enough). */
  private _apply(active: IActive, line: CompletionLine): boolean {
    switch (line.type) {
      case 'start':
        active.id = line.id ?? active.id;
        return true;
      case 'delta': {
        const room = this.settings.maxSuggestionChars - active.text.length;
        active.text += (line.text ?? '').slice(0, Math.max(0, room));
        if (active.text.length >= this.settings.maxSuggestionChars) {
          active.controller.abort(); // enough: the server stops the model
          return false;
        }
        return true;
      }
      case 'end':
        active.finished = line.status === 'COMPLETED';
        this._report(active);
        return false;
      case 'error':
        console.warn(`Polaris inline completion: ${line.message ?? 'failed'}`);
        return false;
      default:
        return false;
    }
  }

  private _close(active: IActive): void {
    active.done = true;
    this._streams.delete(active.id);
    if (this._inflight.get(active.editorId) === active.controller) {
      this._inflight.delete(active.editorId);
    }
  }

  /**
   * A new request from `editorId` with the text `prefix` before the cursor: the
   * suggestion on screen was accepted when the text now runs through it,
   * dismissed when it went elsewhere, and is still pending while the user types
   * along it.
   */
  private _judgeShown(editorId: string, prefix: string): void {
    const shown = this._shown;
    if (!shown || shown.editorId !== editorId) {
      if (shown) {
        this._decide(shown, 'dismissed'); // the user moved to another editor
      }
      return;
    }
    const full = shown.prefix + shown.text;
    if (prefix.startsWith(full)) {
      this._decide(shown, 'accepted');
    } else if (!(full.startsWith(prefix) && prefix.length > shown.prefix.length)) {
      this._decide(shown, 'dismissed');
    }
  }

  private _decide(shown: IActive, outcome: 'accepted' | 'dismissed'): void {
    if (shown.outcome === null) {
      shown.outcome = outcome;
    }
    if (this._shown === shown) {
      this._shown = null;
    }
    this._report(shown);
  }

  /** Feedback once the server knows the completion (its stream finished): shown, then the outcome. */
  private _report(active: IActive): void {
    if (!active.finished || !active.text || !active.id) {
      return;
    }
    if (!active.reported) {
      active.reported = true;
      void this.feedback(active.id, 'shown');
    }
    if (active.outcome) {
      void this.feedback(active.id, active.outcome);
      active.outcome = null;
      active.finished = false; // each outcome once
    }
  }
}
