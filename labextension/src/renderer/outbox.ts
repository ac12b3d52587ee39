/**
 * What the chat view shows while the connection is down: the offline note (a
 * sentence saying what happens next; the technical reason in its tooltip) and
 * the outbox, which keeps one message until the connection is back.
 */

import { clear, h } from './dom';
import { ChatContext } from './types';

/** A message kept while the connection is down, sent when it is back. */
export interface QueuedMessage {
  text: string;
  context?: ChatContext;
}

/** Fill `el` with the offline note for `state` ('offline': the stream reconnects by itself; 'error': it cannot reach Polaris). */
export function renderOfflineNote(el: HTMLElement, state: 'offline' | 'error', detail: string | undefined, onReconnect?: () => void): void {
  clear(el);
  const sentence =
    state === 'offline'
      ? 'Connection to the Jupyter server lost. Reconnecting… your messages are kept and new ones are sent once it is back.'
      : `Cannot reach Polaris${detail ? `: ${detail}` : ''}. Your messages are kept; check that the Jupyter server is running.`;
  el.appendChild(h('span', { className: 'pj-chat-offline-text', title: detail ?? null }, sentence));
  if (onReconnect) {
    const now = h('button', { className: 'pj-link-button pj-reconnect', type: 'button' }, 'Reconnect now');
    now.addEventListener('click', () => onReconnect());
    el.appendChild(now);
  }
}

/** One message waiting for the connection, shown above the message box with Cancel. */
export class Outbox {
  readonly node: HTMLElement;
  private held: QueuedMessage | null = null;

  /** `onCancel` gets the message back (to put it in the box again). */
  constructor(private onCancel: (message: QueuedMessage) => void) {
    this.node = h('div', { className: 'pj-chat-queued', role: 'status', hidden: true });
  }

  get message(): QueuedMessage | null {
    return this.held;
  }

  hold(message: QueuedMessage): void {
    this.held = message;
    clear(this.node);
    const cancel = h('button', { className: 'pj-link-button pj-queued-cancel', type: 'button' }, 'Cancel');
    cancel.addEventListener('click', () => {
      const kept = this.take();
      if (kept) {
        this.onCancel(kept);
      }
    });
    const preview = message.text.length > 80 ? `${message.text.slice(0, 79)}…` : message.text;
    this.node.append(
      h('span', { className: 'pj-chat-queued-text' }, 'Not connected: your message will be sent when the connection is back. '),
      h('q', { className: 'pj-chat-queued-message', title: message.text }, preview),
      ' ',
      cancel
    );
    this.node.hidden = false;
  }

  /** The held message, removed from the outbox (null when empty). */
  take(): QueuedMessage | null {
    const message = this.held;
    this.held = null;
    clear(this.node);
    this.node.hidden = true;
    return message;
  }
}
