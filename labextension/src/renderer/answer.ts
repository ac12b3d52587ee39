/**
 * The `%polaris ask` cell output: the kernel sends the answer's state (reduced from the chat
 * events by the kernel, updated in place) as `application/vnd.polaris.answer+json`; this draws
 * it with the same message renderer as the chat sidebar and the notebook panel.
 *
 * Payload: `{"version": 1, "message": Message}` (the wire shape of types.ts, role assistant).
 * A saved notebook keeps the last state, so it renders the same after a reload.
 */

import { clear, h } from './dom';
import { renderMessage } from './message';
import { Message, ToolCall } from './types';

export const ANSWER_MIME_TYPE = 'application/vnd.polaris.answer+json';
/** The payload version this renderer reads; a newer one is drawn as far as it is understood. */
export const ANSWER_PAYLOAD_VERSION = 1;

export type ParsedAnswer = { message: Message; note?: string } | { error: string };

const isObject = (value: unknown): value is Record<string, any> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Check the payload's shape; a bad one gets a clear reason instead of a broken output. */
export function parseAnswerPayload(data: unknown): ParsedAnswer {
  if (!isObject(data)) {
    return { error: 'the answer payload is not a JSON object' };
  }
  const message = data.message;
  if (!isObject(message)) {
    return { error: 'the answer payload has no "message" object' };
  }
  for (const key of ['id', 'status'] as const) {
    if (typeof message[key] !== 'string' || !message[key]) {
      return { error: `the answer's message has no "${key}" string` };
    }
  }
  if (message.content !== undefined && typeof message.content !== 'string') {
    return { error: 'the answer\'s "content" is not a string' };
  }
  if (message.toolCalls !== undefined && !Array.isArray(message.toolCalls)) {
    return { error: 'the answer\'s "toolCalls" is not a list' };
  }
  const toolCalls = ((message.toolCalls ?? []) as unknown[]).filter(
    (call): call is ToolCall => isObject(call) && typeof call.id === 'string'
  );
  const version = typeof data.version === 'number' ? data.version : ANSWER_PAYLOAD_VERSION;
  return {
    message: { ...message, role: 'assistant', content: message.content ?? '', toolCalls } as Message,
    note: version > ANSWER_PAYLOAD_VERSION ? `written by a newer Polaris (payload version ${version})` : undefined
  };
}

/**
 * Draw (or redraw, on a display update) an answer into `el`. The message element is kept
 * across redraws so tool cards keep the sections the user opened.
 */
export function renderAnswer(el: HTMLElement, data: unknown): void {
  const parsed = parseAnswerPayload(data);
  if ('error' in parsed) {
    el.className = 'pj-widget pj-answer pj-answer-invalid';
    clear(el);
    el.appendChild(h('div', { className: 'pj-msg-error', role: 'alert' }, `Polaris cannot show this answer: ${parsed.error}.`));
    return;
  }
  const { message, note } = parsed;
  // pj-cell-answer-<status>: the same hook as the HTML fallback, for tests and user CSS.
  el.className = `pj-widget pj-answer pj-cell-answer pj-cell-answer-${message.status}`;
  let messageEl = el.querySelector<HTMLElement>(':scope > .pj-msg');
  if (!messageEl) {
    clear(el);
    messageEl = h('div', { className: 'pj-msg' });
    el.appendChild(messageEl);
  }
  renderMessage(messageEl, message, { retryHint: 'Retry with %polaris retry' });
  el.querySelector(':scope > .pj-answer-note')?.remove();
  if (note) {
    el.appendChild(h('div', { className: 'pj-answer-note pj-muted' }, note));
  }
}
