/**
 * ChatView: the framework-free chat renderer shared by the JupyterLab
 * sidebar and the notebook widget. The host feeds it snapshots and events
 * and wires its actions (send, stop, retry, revert) to REST or comm.
 */

import { clear, h } from './dom';
import { renderMarkdown } from './markdown';
import { isFinal, mergeDelta, mergeMessage, upsertToolCall } from './stream';
import { REVERT_CONFLICT, renderToolCard } from './toolcard';
import {
  ChatActions,
  ChatContext,
  ChatStatus,
  Conversation,
  isActive,
  Message,
  messageErrorText,
  MessageStatus,
  PolarisEvent
} from './types';

export type ConnectionState = 'connected' | 'connecting' | 'offline' | 'error';

interface Entry {
  message: Message;
  el: HTMLElement;
  renderedKey: string;
}

const ROLE_LABEL: Record<string, string> = { user: 'You', assistant: 'Polaris', tool: 'Tool' };

const STATUS_LABEL: Record<MessageStatus, string> = {
  pending: 'waiting',
  processing: 'thinking…',
  completed: '',
  failed: 'failed',
  cancelled: 'stopped'
};

function schedule(fn: () => void, windowMs: number): () => void {
  if (windowMs <= 16 && typeof requestAnimationFrame === 'function') {
    const handle = requestAnimationFrame(() => fn());
    return () => cancelAnimationFrame(handle);
  }
  const handle = setTimeout(fn, Math.max(windowMs, 16));
  return () => clearTimeout(handle);
}

export interface ChatViewOptions {
  placeholder?: string;
  /** Hide the header when the host draws its own title bar. */
  showHeader?: boolean;
  /** Host controls (e.g. a conversation picker) shown in the header in place of the title. */
  toolbar?: HTMLElement;
  /** Coalesce streamed updates into at most one repaint per window (default: one per frame). */
  streamWindowMs?: number;
}

export class ChatView {
  readonly node: HTMLElement;
  private actions: ChatActions;
  private conversation: Conversation | null = null;
  private entries = new Map<string, Entry>();
  private order: string[] = [];
  private dirty = new Set<string>();
  private cancelFlush: (() => void) | null = null;
  private resyncRequested = false;
  private revertStates = new Map<string, string>();
  private context: ChatContext | null = null;
  private includeContext = true;
  private sending = false;
  private busy = false;
  private disposed = false;
  private streamWindowMs: number;

  private titleEl: HTMLElement;
  private statusEl: HTMLElement;
  private connectionEl: HTMLElement;
  private bannerEl: HTMLElement;
  private offlineEl: HTMLElement;
  private listEl: HTMLElement;
  private emptyEl: HTMLElement;
  private contextEl: HTMLElement;
  private inputEl: HTMLTextAreaElement;
  private sendButton: HTMLButtonElement;
  private stopButton: HTMLButtonElement;

  constructor(el: HTMLElement, actions: ChatActions, options: ChatViewOptions = {}) {
    this.actions = actions;
    this.streamWindowMs = options.streamWindowMs ?? 0;
    this.titleEl = h('span', { className: 'pj-chat-title' }, 'New conversation');
    this.connectionEl = h('span', { className: 'pj-conn pj-conn-connected', title: 'connected' });
    this.statusEl = h('span', { className: 'pj-chat-status' });
    this.bannerEl = h('div', { className: 'pj-banner', role: 'alert', hidden: true });
    this.offlineEl = h('div', { className: 'pj-chat-offline', role: 'status', hidden: true });
    this.emptyEl = h(
      'div',
      { className: 'pj-chat-empty' },
      h('div', { className: 'pj-chat-empty-title' }, 'Ask Polaris'),
      h('div', null, 'It reads and edits files in your workspace; every answer runs as a background job you can stop, retry or revert.')
    );
    this.listEl = h('div', { className: 'pj-chat-messages', role: 'log', 'aria-live': 'polite' }, this.emptyEl);
    this.contextEl = h('div', { className: 'pj-chat-context', hidden: true });
    this.inputEl = h('textarea', {
      className: 'pj-chat-input',
      rows: 2,
      placeholder: options.placeholder ?? 'Ask Polaris…',
      'aria-label': 'Message'
    }) as HTMLTextAreaElement;
    this.sendButton = h('button', { className: 'pj-button pj-button-primary pj-send', type: 'button' }, 'Send') as HTMLButtonElement;
    this.stopButton = h('button', { className: 'pj-button pj-button-danger pj-stop', type: 'button', hidden: true }, 'Stop') as HTMLButtonElement;

    const header = h(
      'div',
      { className: 'pj-chat-header', hidden: options.showHeader === false },
      this.connectionEl,
      options.toolbar ?? this.titleEl,
      this.statusEl
    );
    if (options.toolbar) {
      options.toolbar.classList.add('pj-chat-toolbar');
    }
    const composer = h(
      'div',
      { className: 'pj-chat-composer' },
      this.contextEl,
      h('div', { className: 'pj-chat-input-row' }, this.inputEl, h('div', { className: 'pj-chat-buttons' }, this.stopButton, this.sendButton)),
      h('div', { className: 'pj-chat-hint' }, 'Enter to send · Shift+Enter for a new line')
    );
    this.node = h('div', { className: 'pj-chat' }, header, this.offlineEl, this.bannerEl, this.listEl, composer);
    el.appendChild(this.node);

    this.inputEl.addEventListener('keydown', this.onKeyDown);
    this.sendButton.addEventListener('click', () => this.submit());
    this.stopButton.addEventListener('click', () => {
      const active = this.activeMessage();
      if (active) {
        this.runAction(() => this.actions.stop(active.id), 'Could not stop the reply');
      }
    });
    this.updateComposer();
  }

  // ---- host API ---------------------------------------------------------

  setConversation(conversation: Conversation | null): void {
    const changed = (conversation?.id ?? null) !== (this.conversation?.id ?? null);
    this.conversation = conversation;
    this.titleEl.textContent = conversation?.title || 'New conversation';
    if (changed) {
      this.setMessages([]);
    }
  }

  /** Replace all messages with a snapshot (merging with what streamed in meanwhile). */
  setMessages(messages: Message[]): void {
    const previous = this.entries;
    this.entries = new Map();
    this.order = [];
    clear(this.listEl);
    for (const message of messages) {
      const merged = mergeMessage(previous.get(message.id)?.message, message);
      this.addEntry(merged);
    }
    this.resyncRequested = false;
    this.updateEmpty();
    this.flush();
    this.scrollToBottom();
  }

  getMessages(): Message[] {
    return this.order.map(id => this.entries.get(id)!.message);
  }

  applyEvents(events: PolarisEvent[]): void {
    for (const event of events) {
      this.applyEvent(event);
    }
  }

  applyEvent(event: PolarisEvent): void {
    if (this.disposed) {
      return;
    }
    if (this.conversation && event.conversationId && event.conversationId !== this.conversation.id) {
      return;
    }
    const data = event.data ?? {};
    switch (event.type) {
      case 'message.created': {
        const message = data.message as Message | undefined;
        if (!message?.id) {
          return;
        }
        const entry = this.entries.get(message.id);
        if (entry) {
          entry.message = mergeMessage(entry.message, message);
          this.markDirty(message.id);
        } else {
          this.addEntry(mergeMessage(undefined, message));
          this.updateEmpty();
          this.markDirty(message.id);
        }
        return;
      }
      case 'message.delta': {
        const entry = this.entries.get(data.messageId);
        if (!entry) {
          this.requestResync(`delta for unknown message ${data.messageId}`);
          return;
        }
        if (this.isStale(entry.message, event)) {
          return;
        }
        const merged = mergeDelta(entry.message.content ?? '', Number(data.offset), String(data.delta ?? ''));
        if (merged.result === 'gap') {
          this.requestResync(`gap in message ${data.messageId} at offset ${data.offset}`);
          return;
        }
        if (merged.result === 'applied') {
          entry.message = { ...entry.message, content: merged.content };
          if (entry.message.status === 'pending') {
            entry.message.status = 'processing';
          }
          this.markDirty(entry.message.id);
        }
        return;
      }
      case 'message.status': {
        const entry = this.entries.get(data.messageId);
        if (!entry) {
          this.requestResync(`status for unknown message ${data.messageId}`);
          return;
        }
        const status = data.status as MessageStatus;
        let message = entry.message;
        if (data.reset) {
          // A retry or a new attempt: its text replaces the old one (never appended twice).
          message = { ...message, content: '', toolCalls: [], error: null };
        } else if (event.runId && message.runId && event.runId !== message.runId) {
          if (isFinal(status)) {
            return; // the end of an older run of this message
          }
          message = { ...message, runId: event.runId, content: '', toolCalls: [], error: null };
        } else if (isFinal(message.status) && !isFinal(status)) {
          return; // stale: older than what we already show
        }
        if (event.runId && !data.reset) {
          message.runId = event.runId;
        }
        entry.message = {
          ...message,
          status,
          error: data.error ?? (isFinal(status) ? message.error : null),
          usage: data.usage ?? message.usage,
          provider: data.provider ?? message.provider,
          model: data.model ?? message.model
        };
        this.markDirty(message.id);
        return;
      }
      case 'run.reverted': {
        const runId = typeof data.runId === 'string' ? data.runId : '';
        if (runId && this.revertStates.get(runId) !== 'reverting') {
          this.revertStates.set(runId, 'reverted');
          this.markRunDirty(runId);
        }
        return;
      }
      case 'toolcall.started':
      case 'toolcall.finished': {
        const entry = this.entries.get(data.messageId);
        if (!entry) {
          this.requestResync(`tool call for unknown message ${data.messageId}`);
          return;
        }
        if (this.isStale(entry.message, event) || !data.toolCall?.id) {
          return;
        }
        entry.message = { ...entry.message, toolCalls: upsertToolCall(entry.message.toolCalls, data.toolCall) };
        this.markDirty(entry.message.id);
        return;
      }
      default:
        return;
    }
  }

  setStatus(status: ChatStatus & { text?: string }): void {
    const parts = [status.provider, status.model].filter(Boolean);
    const text = status.text ?? (parts.length ? parts.join(' · ') : 'no model configured');
    this.statusEl.textContent = text;
    this.statusEl.title = parts.length ? `provider: ${status.provider ?? '?'}, model: ${status.model ?? '?'}` : text;
  }

  setConnection(state: ConnectionState, detail?: string): void {
    this.connectionEl.className = `pj-conn pj-conn-${state}`;
    this.connectionEl.title = detail ?? state;
    const offline = state === 'offline' || state === 'error';
    this.offlineEl.hidden = !offline;
    this.offlineEl.textContent = offline ? `Live updates paused: ${detail ?? state}` : '';
  }

  /** Show an error banner (null hides it). */
  showError(text: string | null): void {
    clear(this.bannerEl);
    if (!text) {
      this.bannerEl.hidden = true;
      return;
    }
    const close = h('button', { className: 'pj-banner-close', type: 'button', title: 'Dismiss', 'aria-label': 'Dismiss' }, '×');
    close.addEventListener('click', () => this.showError(null));
    this.bannerEl.append(h('span', { className: 'pj-banner-text' }, text), close);
    this.bannerEl.hidden = false;
  }

  /** Offer a file as context for the next message (null: none). */
  setContext(context: ChatContext | null): void {
    this.context = context;
    clear(this.contextEl);
    if (!context?.currentFile) {
      this.contextEl.hidden = true;
      return;
    }
    const box = h('input', { type: 'checkbox', className: 'pj-context-toggle' }) as HTMLInputElement;
    box.checked = this.includeContext;
    box.addEventListener('change', () => {
      this.includeContext = box.checked;
    });
    this.contextEl.append(
      h('label', { title: 'Send the open file as context with your message' }, box, ' Include ', h('code', null, context.currentFile))
    );
    this.contextEl.hidden = false;
  }

  /** Host-level busy flag (e.g. a kernel request in flight): disables Send. */
  setBusy(busy: boolean): void {
    this.busy = busy;
    this.updateComposer();
  }

  setStreamWindow(windowMs: number): void {
    this.streamWindowMs = Math.max(0, windowMs);
  }

  focus(): void {
    this.inputEl.focus();
  }

  dispose(): void {
    if (this.disposed) {
      return;
    }
    this.disposed = true;
    this.cancelFlush?.();
    this.inputEl.removeEventListener('keydown', this.onKeyDown);
    this.node.remove();
    this.entries.clear();
  }

  // ---- internals --------------------------------------------------------

  private isStale(message: Message, event: PolarisEvent): boolean {
    return Boolean(event.runId && message.runId && event.runId !== message.runId);
  }

  private requestResync(reason: string): void {
    if (this.resyncRequested) {
      return;
    }
    this.resyncRequested = true;
    this.actions.resync?.(reason);
  }

  private onKeyDown = (event: KeyboardEvent): void => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    }
  };

  private submit(): void {
    const text = this.inputEl.value.trim();
    if (!text || this.sending || this.busy || this.activeMessage()) {
      return;
    }
    const context =
      this.includeContext && this.context?.currentFile ? { currentFile: this.context.currentFile } : undefined;
    this.inputEl.value = '';
    this.sending = true;
    this.updateComposer();
    this.showError(null);
    Promise.resolve()
      .then(() => this.actions.send(text, context))
      .catch((error: unknown) => {
        if (!this.inputEl.value) {
          this.inputEl.value = text;
        }
        this.showError(`Could not send: ${errorText(error)}`);
      })
      .finally(() => {
        this.sending = false;
        this.updateComposer();
      });
  }

  private runAction(action: () => unknown, what: string): Promise<void> {
    return Promise.resolve()
      .then(action)
      .then(
        () => undefined,
        (error: unknown) => this.showError(`${what}: ${errorText(error)}`)
      );
  }

  private revert(runId: string, force = false): void {
    this.revertStates.set(runId, 'reverting');
    this.markRunDirty(runId);
    Promise.resolve()
      .then(() => this.actions.revert(runId, force))
      .then(
        () => this.revertStates.set(runId, 'reverted'),
        (error: unknown) =>
          this.revertStates.set(runId, (error as { status?: unknown })?.status === 409 ? `${REVERT_CONFLICT}${errorText(error)}` : `Revert failed: ${errorText(error)}`)
      )
      .finally(() => this.markRunDirty(runId));
  }

  private markRunDirty(runId: string): void {
    for (const entry of this.entries.values()) {
      if (entry.message.runId === runId) {
        this.markDirty(entry.message.id);
      }
    }
  }

  private activeMessage(): Message | undefined {
    for (let i = this.order.length - 1; i >= 0; i--) {
      const message = this.entries.get(this.order[i])!.message;
      if (message.role === 'assistant' && isActive(message)) {
        return message;
      }
    }
    return undefined;
  }

  private updateComposer(): void {
    const active = Boolean(this.activeMessage());
    this.stopButton.hidden = !active;
    this.sendButton.disabled = active || this.sending || this.busy;
    this.sendButton.textContent = this.sending ? 'Sending…' : 'Send';
  }

  private updateEmpty(): void {
    if (this.order.length === 0) {
      if (!this.emptyEl.parentElement) {
        this.listEl.appendChild(this.emptyEl);
      }
    } else {
      this.emptyEl.remove();
    }
  }

  private addEntry(message: Message): void {
    const el = h('div', { className: 'pj-msg', 'data-message-id': message.id });
    this.entries.set(message.id, { message, el, renderedKey: '' });
    this.order.push(message.id);
    this.listEl.appendChild(el);
    this.dirty.add(message.id);
  }

  private markDirty(id: string): void {
    this.dirty.add(id);
    if (!this.cancelFlush) {
      this.cancelFlush = schedule(() => {
        this.cancelFlush = null;
        this.flush();
      }, this.streamWindowMs);
    }
  }

  private flush(): void {
    if (this.disposed) {
      return;
    }
    this.cancelFlush?.();
    this.cancelFlush = null;
    const nearBottom = this.listEl.scrollHeight - this.listEl.scrollTop - this.listEl.clientHeight < 48;
    for (const id of this.dirty) {
      const entry = this.entries.get(id);
      if (entry) {
        this.renderEntry(entry);
      }
    }
    this.dirty.clear();
    this.updateComposer();
    if (nearBottom) {
      this.scrollToBottom();
    }
  }

  private scrollToBottom(): void {
    this.listEl.scrollTop = this.listEl.scrollHeight;
  }

  private renderEntry(entry: Entry): void {
    const m = entry.message;
    // A revert in flight or refused here wins; otherwise what the server knows (a revert made
    // before this view loaded, or from another tab, the notebook, a magic).
    const revert = m.runId ? this.revertStates.get(m.runId) ?? (m.revertedAt ? 'reverted' : '') : '';
    const key = JSON.stringify([m.content, m.status, m.error, m.toolCalls, m.provider, m.model, revert]);
    if (key === entry.renderedKey) {
      return;
    }
    entry.renderedKey = key;
    const el = entry.el;
    el.className = `pj-msg pj-msg-${m.role} pj-msg-status-${m.status}`;

    const meta = h('div', { className: 'pj-msg-meta' }, h('span', { className: 'pj-msg-role' }, ROLE_LABEL[m.role] ?? m.role));
    const statusLabel = STATUS_LABEL[m.status] ?? m.status;
    if (statusLabel && m.role === 'assistant') {
      meta.appendChild(h('span', { className: `pj-badge pj-badge-${m.status}` }, statusLabel));
    }
    if (m.role === 'assistant' && m.model && isFinal(m.status)) {
      meta.appendChild(h('span', { className: 'pj-msg-model' }, [m.provider, m.model].filter(Boolean).join(' · ')));
    }

    const oldCards = new Map<string, HTMLElement>();
    el.querySelectorAll<HTMLElement>('.pj-tool[data-tool-id]').forEach(card => oldCards.set(card.dataset.toolId!, card));

    const body = h('div', { className: 'pj-msg-body' });
    if (m.role === 'tool') {
      body.appendChild(h('pre', { className: 'pj-msg-tool-output' }, m.content));
    } else if (m.content) {
      body.classList.add('pj-markdown');
      body.innerHTML = renderMarkdown(m.content); // sanitized: see markdown.ts
    } else if (m.role === 'assistant' && isActive(m)) {
      body.appendChild(h('span', { className: 'pj-typing', 'aria-label': 'thinking' }, h('span'), h('span'), h('span')));
    }

    const tools = h('div', { className: 'pj-msg-tools' });
    for (const call of m.toolCalls ?? []) {
      tools.appendChild(
        renderToolCard(
          call,
          { runId: m.runId, onRevert: (runId, force) => this.revert(runId, force), revertState: revert || undefined },
          oldCards.get(call.id)
        )
      );
    }

    const parts: HTMLElement[] = [meta];
    if (m.toolCalls?.length) {
      parts.push(tools);
    }
    parts.push(body);
    const error = messageErrorText(m.error);
    if (m.status === 'failed' || m.status === 'cancelled') {
      const note =
        m.status === 'failed'
          ? 'Polaris could not finish this answer.'
          : 'This answer was stopped.';
      const failure = h('div', { className: 'pj-msg-error' }, h('span', null, note));
      if (error.text && !(m.status === 'cancelled' && /cancel/i.test(error.text))) {
        failure.appendChild(h('span', { className: 'pj-msg-error-detail', title: error.detail || null }, ` ${error.text}`));
      }
      if (m.role === 'assistant') {
        const retry = h('button', { className: 'pj-button pj-button-secondary pj-retry', type: 'button' }, 'Retry');
        retry.addEventListener('click', () => {
          (retry as HTMLButtonElement).disabled = true;
          void this.runAction(() => this.actions.retry(m.id), 'Could not retry');
        });
        failure.appendChild(h('div', { className: 'pj-msg-actions' }, retry));
      }
      parts.push(failure);
    } else if (isActive(m) && error.text) {
      parts.push(h('div', { className: 'pj-msg-retrying', title: error.detail || null }, `Retrying after an error: ${error.text}`));
    }
    clear(el);
    el.append(...parts);
  }
}

export function errorText(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  if (typeof error === 'string') {
    return error;
  }
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
}
