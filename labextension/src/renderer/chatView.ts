/**
 * ChatView: the framework-free chat renderer shared by the JupyterLab
 * sidebar and the notebook widget. The host feeds it snapshots and events
 * and wires its actions (send, stop, retry, revert) to REST or comm.
 *
 * While the host reports the connection offline, Send keeps the message
 * (one, shown above the box with Cancel) and sends it once the connection is
 * back; a send that fails because the server cannot be reached is kept too.
 */

import { clear, h } from './dom';
import { renderMessage } from './message';
import { Outbox, QueuedMessage, renderOfflineNote } from './outbox';
import { applyMessageEvent, eventMessageId, mergeMessage } from './stream';
import { REVERT_CONFLICT } from './toolcard';
import { ContextChips } from './contextChips';
import { MentionMenu } from './mentions';
import { installFileDrop } from './fileDrop';
import { ChatActions, ChatContext, ChatStatus, Conversation, isActive, Message, PolarisEvent } from './types';

export type ConnectionState = 'connected' | 'connecting' | 'offline' | 'error';

/** A kept message the server could not take yet (unreachable, starting) is tried again after this. */
const QUEUED_RETRY_MS = 2000;

/** The title of a conversation that has none yet (the server's default title too). */
export const NEW_CHAT_TITLE = 'New chat';

interface Entry {
  message: Message;
  el: HTMLElement;
  renderedKey: string;
}

/** The events that change one message (applyMessageEvent applies them). */
const MESSAGE_EVENTS = new Set(['message.created', 'message.delta', 'message.status', 'toolcall.started', 'toolcall.finished', 'approval.decided']);

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
  /** Reconnect at once (a "Reconnect now" button in the offline note); no button without it. */
  onReconnect?: () => void;
  /** Workspace files for an @-mention (GET /files); without it `@` offers only `@cell`. */
  mentionFiles?: (query: string) => Promise<string[]>;
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
  private chips = new ContextChips();
  private mentions: MentionMenu;
  /** Files dragged from the file browser attach as chips (fileDrop.ts). */
  private stopFileDrop: () => void;
  private sending = false;
  private busy = false;
  private disposed = false;
  private streamWindowMs: number;
  /** Offline or in error, or reconnecting after that: Send queues. */
  private down = false;
  private outbox: Outbox;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private onReconnect?: () => void;

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
    this.onReconnect = options.onReconnect;
    this.titleEl = h('span', { className: 'pj-chat-title' }, NEW_CHAT_TITLE);
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
    this.contextEl = this.chips.node;
    this.outbox = new Outbox(message => {
      if (!this.inputEl.value) {
        this.inputEl.value = message.text;
      }
      this.updateComposer();
      this.focus();
    });
    this.inputEl = h('textarea', {
      className: 'pj-chat-input',
      rows: 2,
      placeholder: options.placeholder ?? 'Ask Polaris…',
      'aria-label': 'Message'
    }) as HTMLTextAreaElement;
    const mentionFiles = options.mentionFiles;
    this.mentions = new MentionMenu({
      input: this.inputEl,
      files: query => (mentionFiles ? mentionFiles(query) : Promise.resolve([])),
      // @cell: the active cell as the host offers it (labContext: the selected or active cells)
      activeCell: () => this.context?.items?.find(item => item.kind === 'cell') ?? null,
      attach: item => this.chips.add(item)
    });
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
      this.outbox.node,
      this.contextEl,
      this.mentions.node,
      h('div', { className: 'pj-chat-input-row' }, this.inputEl, h('div', { className: 'pj-chat-buttons' }, this.stopButton, this.sendButton)),
      h('div', { className: 'pj-chat-hint' }, 'Enter to send · Shift+Enter for a new line')
    );
    this.node = h('div', { className: 'pj-chat' }, header, this.offlineEl, this.bannerEl, this.listEl, composer);
    this.stopFileDrop = installFileDrop({ target: this.node, noteHost: composer, attach: item => this.chips.add(item) });
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
    this.titleEl.textContent = conversation?.title || NEW_CHAT_TITLE;
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
    if (event.type === 'run.reverted') {
      const runId = typeof data.runId === 'string' ? data.runId : '';
      if (runId && this.revertStates.get(runId) !== 'reverting') {
        this.revertStates.set(runId, 'reverted');
        this.markRunDirty(runId);
      }
      return;
    }
    const id = eventMessageId(event);
    if (!id || !MESSAGE_EVENTS.has(event.type)) {
      return;
    }
    const entry = this.entries.get(id);
    if (!entry && event.type === 'message.created') {
      this.addEntry(mergeMessage(undefined, data.message as Message));
      this.updateEmpty();
      this.markDirty(id);
      return;
    }
    if (!entry) {
      this.requestResync(`${event.type} for unknown message ${id}`);
      return;
    }
    const applied = applyMessageEvent(entry.message, event);
    if (applied.result === 'gap') {
      this.requestResync(`gap in message ${id} at offset ${data.offset}`);
    } else if (applied.result === 'changed') {
      entry.message = applied.message;
      this.markDirty(entry.message.id);
    }
  }

  setStatus(status: ChatStatus & { text?: string }): void {
    const parts = [status.provider, status.model].filter(Boolean);
    const text = status.text ?? (parts.length ? parts.join(' · ') : 'no model configured');
    this.statusEl.textContent = text;
    this.statusEl.title = parts.length ? `provider: ${status.provider ?? '?'}, model: ${status.model ?? '?'}` : text;
  }

  /**
   * The host's connection state; `detail` (technical: close code, next retry) goes in the dot's
   * tooltip, the note says in words what happens. Back to connected, a queued message is sent.
   */
  setConnection(state: ConnectionState, detail?: string): void {
    const wasDown = this.down;
    this.down = state === 'offline' || state === 'error' || (state === 'connecting' && wasDown);
    this.connectionEl.className = `pj-conn pj-conn-${state}`;
    this.connectionEl.title = state === 'connected' ? 'Live updates on' : detail ?? state;
    if (state === 'connecting' && wasDown) {
      return; // a reconnect attempt: the note stays as it is until it succeeds or fails
    }
    clear(this.offlineEl);
    this.offlineEl.hidden = !this.down;
    if (state === 'offline' || state === 'error') {
      renderOfflineNote(this.offlineEl, state, detail, this.onReconnect);
    }
    if (state === 'connected') {
      this.sendQueued();
    }
    this.updateComposer();
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

  /** Offer what the user looks at as context for the next message (chips; null: none). */
  setContext(context: ChatContext | null): void {
    this.context = context;
    this.chips.offer(context?.items ?? (context?.currentFile ? [{ kind: 'file', path: context.currentFile }] : []));
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
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
    }
    this.inputEl.removeEventListener('keydown', this.onKeyDown);
    this.stopFileDrop();
    this.node.remove();
    this.entries.clear();
  }

  // ---- internals --------------------------------------------------------

  private requestResync(reason: string): void {
    if (this.resyncRequested) {
      return;
    }
    this.resyncRequested = true;
    this.actions.resync?.(reason);
  }

  private onKeyDown = (event: KeyboardEvent): void => {
    if (this.mentions.onKeyDown(event)) {
      return; // an @-mention was chosen or the list moved: not a send
    }
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    }
  };

  private submit(): void {
    const text = this.inputEl.value.trim();
    if (!text || this.sending || this.busy || this.outbox.message || this.activeMessage()) {
      return;
    }
    const items = this.chips.items();
    this.chips.clearAdded();
    this.mentions.close();
    // Nothing kept, nothing sent (not even the open file's name).
    const context = items.length ? { currentFile: this.context?.currentFile ?? items[0].path, items } : undefined;
    this.inputEl.value = '';
    if (this.down) {
      this.hold({ text, context });
      return;
    }
    this.deliver({ text, context });
  }

  private deliver(message: QueuedMessage): void {
    this.sending = true;
    this.updateComposer();
    this.showError(null);
    Promise.resolve()
      .then(() => this.actions.send(message.text, message.context))
      .catch((error: unknown) => {
        const status = (error as { status?: unknown })?.status;
        if (status === 0 || status === 503) {
          // Not reachable (keep it for when the connection is back) or still starting: try again soon.
          this.hold(message);
          this.retryQueuedSoon();
          return;
        }
        if (!this.inputEl.value) {
          this.inputEl.value = message.text;
        }
        this.showError(`Could not send: ${errorText(error)}`);
      })
      .finally(() => {
        this.sending = false;
        this.updateComposer();
      });
  }

  /** Keep one message until the connection is back (Cancel puts it back in the box). */
  private hold(message: QueuedMessage): void {
    this.outbox.hold(message);
    this.updateComposer();
  }

  private retryQueuedSoon(): void {
    if (!this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (!this.down && !this.disposed) {
          this.sendQueued();
        }
      }, QUEUED_RETRY_MS);
    }
  }

  private sendQueued(): void {
    if (!this.outbox.message || this.sending || this.busy || this.activeMessage()) {
      return;
    }
    this.deliver(this.outbox.take()!);
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
    const queued = Boolean(this.outbox.message);
    this.sendButton.disabled = active || this.sending || this.busy || queued;
    this.sendButton.textContent = this.sending ? 'Sending…' : queued ? 'Queued' : 'Send';
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
    if (this.outbox.message && !this.down) {
      this.sendQueued(); // kept while an answer was running
    }
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
    const key = JSON.stringify([m.content, m.status, m.error, m.toolCalls, m.provider, m.model, m.usage ?? null, revert]);
    if (key === entry.renderedKey) {
      return;
    }
    entry.renderedKey = key;
    renderMessage(entry.el, m, {
      onRetry: id => this.runAction(() => this.actions.retry(id), 'Could not retry'),
      onRevert: (runId, force) => this.revert(runId, force),
      revertState: revert || undefined,
      onDecide: this.actions.decide?.bind(this.actions)
    });
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
