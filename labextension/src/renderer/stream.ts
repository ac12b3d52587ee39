/**
 * Pure helpers for applying streamed chat events to messages.
 *
 * Deltas carry the offset where they start, so applying one twice, or a snapshot that already
 * contains it, is harmless; a delta that starts past the end of what we have means we missed
 * one (a gap) and must resync. Offsets count Unicode code points, as the server (Python)
 * does, not UTF-16 units: an emoji is one, not two.
 */

import { approvalRef } from './approvals';
import { isFinalMessage, Message, MessageStatus, PolarisEvent, ToolCall } from './types';

export type DeltaResult = 'applied' | 'duplicate' | 'gap';

export interface MergedDelta {
  content: string;
  result: DeltaResult;
  /** Length of `content` in code points. */
  length: number;
}

/** Length of `text` in code points (a surrogate pair counts once). */
export function codePointLength(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length - 1; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        length--;
        i++;
      }
    }
  }
  return length;
}

/** `text` without its first `count` code points. */
function dropCodePoints(text: string, count: number): string {
  let i = 0;
  for (let n = 0; n < count && i < text.length; n++) {
    const unit = text.charCodeAt(i);
    const next = text.charCodeAt(i + 1);
    i += unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? 2 : 1;
  }
  return text.slice(i);
}

/** Apply `delta` starting at code point `offset` to `content` (of `length` code points). */
export function mergeDelta(content: string, offset: number, delta: string, length = codePointLength(content)): MergedDelta {
  if (!Number.isInteger(offset) || offset < 0 || offset > length) {
    return { content, result: 'gap', length };
  }
  const deltaLength = codePointLength(delta);
  if (offset + deltaLength <= length) {
    return { content, result: 'duplicate', length };
  }
  // Overlap: keep what we have, append only the new tail.
  return { content: content + dropCodePoints(delta, length - offset), result: 'applied', length: offset + deltaLength };
}

/** A tool call only moves forward: held for approval, running, then finished. */
const PHASE: Record<string, number> = { waiting: 0, running: 1, succeeded: 2, failed: 2 };

/** Insert or replace a tool call (by id) in a message's list; returns a new list. */
export function upsertToolCall(calls: ToolCall[] | undefined, call: ToolCall): ToolCall[] {
  const list = calls ? [...calls] : [];
  const index = list.findIndex(c => c.id === call.id);
  if (index >= 0) {
    // A late "started" must not undo a "finished" (nor a "waiting" a "running").
    if ((PHASE[call.status] ?? 2) < (PHASE[list[index].status] ?? 2)) {
      return list;
    }
    list[index] = { ...list[index], ...call };
  } else {
    list.push(call);
  }
  return list;
}

/**
 * Merge a message coming from a snapshot or message.created with what we
 * already hold. Within one run, the longer content wins (deltas may have run
 * ahead of a snapshot) and a final status is never downgraded by an older
 * snapshot; a different run id (a retry) replaces the message wholesale.
 */
export function mergeMessage(existing: Message | undefined, incoming: Message): Message {
  const fresh: Message = { ...incoming, toolCalls: incoming.toolCalls ? [...incoming.toolCalls] : [] };
  if (!existing || (existing.runId ?? null) !== (incoming.runId ?? null)) {
    return fresh;
  }
  const merged: Message = { ...existing, ...fresh };
  if (existing.content.length > incoming.content.length && existing.content.startsWith(incoming.content)) {
    merged.content = existing.content;
  }
  if (isFinalMessage(existing.status) && !isFinalMessage(incoming.status)) {
    merged.status = existing.status;
    merged.error = existing.error;
  }
  let calls = existing.toolCalls ?? [];
  for (const call of incoming.toolCalls ?? []) {
    calls = upsertToolCall(calls, call);
  }
  merged.toolCalls = calls;
  return merged;
}

/** What one event did to a message: changed it, nothing (duplicate, stale, other message), or
 *  showed that an earlier event was missed (the host must resync from a snapshot). */
export type EventResult = 'changed' | 'ignored' | 'gap';

export interface AppliedEvent {
  message: Message;
  result: EventResult;
}

/** Code point lengths of streamed messages' content, so a delta costs its own size, not the text's. */
const contentLengths = new WeakMap<Message, number>();

function contentLength(message: Message): number {
  let length = contentLengths.get(message);
  if (length === undefined) {
    length = codePointLength(message.content ?? '');
    contentLengths.set(message, length);
  }
  return length;
}

/** The id of the message an event is about (message.created carries the whole message). */
export function eventMessageId(event: PolarisEvent): string | undefined {
  const data = event.data ?? {};
  const id = event.type === 'message.created' ? data.message?.id : data.messageId;
  return typeof id === 'string' ? id : undefined;
}

/**
 * The one reducer of chat events into a message (pure: the input is never mutated). The same
 * rules are kept in Python (`polaris_jupyter.kernel._answer.AnswerState`) for the terminal and
 * the HTML fallback; both are pinned by `tests/fixtures/events/*.json`.
 *
 * - Deltas merge by code-point offset (see mergeDelta); a gap asks for a resync; a final
 *   answer takes no more text.
 * - Events of another run than the message's are stale, except a non-final status, which means
 *   a retry started: the message takes that run and starts over.
 * - A `reset` status (a retry or a new attempt) clears text, tool calls and error.
 * - A final status is never undone by a late non-final one.
 */
export function applyMessageEvent(message: Message, event: PolarisEvent): AppliedEvent {
  const data = event.data ?? {};
  const ignored: AppliedEvent = { message, result: 'ignored' };
  if (eventMessageId(event) !== message.id) {
    return ignored;
  }
  const otherRun = Boolean(event.runId && message.runId && event.runId !== message.runId);
  switch (event.type) {
    case 'message.created':
      return { message: mergeMessage(message, data.message as Message), result: 'changed' };
    case 'message.delta': {
      if (otherRun || isFinalMessage(message.status)) {
        return ignored; // another run's text, or a finished answer's (its text is complete)
      }
      const merged = mergeDelta(message.content ?? '', typeof data.offset === 'number' ? data.offset : NaN, String(data.delta ?? ''), contentLength(message));
      if (merged.result !== 'applied') {
        return merged.result === 'gap' ? { message, result: 'gap' } : ignored;
      }
      const status = message.status === 'pending' ? 'processing' : message.status;
      const next = { ...message, content: merged.content, status };
      contentLengths.set(next, merged.length);
      return { message: next, result: 'changed' };
    }
    case 'message.status': {
      const status = (typeof data.status === 'string' ? data.status : message.status) as MessageStatus;
      let next = message;
      if (data.reset || (otherRun && !isFinalMessage(status))) {
        next = { ...message, content: '', toolCalls: [], error: null };
      } else if (otherRun || (isFinalMessage(message.status) && !isFinalMessage(status))) {
        return ignored; // the end of an older run, or older than what we hold
      }
      return {
        message: {
          ...next,
          runId: event.runId || next.runId,
          status,
          error: data.error ?? (isFinalMessage(status) ? next.error : null),
          usage: data.usage ?? next.usage,
          provider: data.provider ?? next.provider,
          model: data.model ?? next.model
        },
        result: 'changed'
      };
    }
    case 'approval.decided': {
      // The card shows the decision (its buttons go away).
      const callId = data.toolCallId;
      if (otherRun || !data.approval || !message.toolCalls?.some(c => c.id === callId)) {
        return ignored;
      }
      const toolCalls = message.toolCalls.map(c => (c.id === callId ? { ...c, approval: approvalRef(data.approval) } : c));
      return { message: { ...message, toolCalls }, result: 'changed' };
    }
    case 'toolcall.started':
    case 'toolcall.finished':
      if (otherRun || !data.toolCall?.id) {
        return ignored;
      }
      return { message: { ...message, toolCalls: upsertToolCall(message.toolCalls, data.toolCall as ToolCall) }, result: 'changed' };
    default:
      return ignored;
  }
}

/** Apply a sequence of events to a message; `gap` tells whether one was missed on the way. */
export function reduceMessage(initial: Message, events: PolarisEvent[]): { message: Message; gap: boolean } {
  let message = initial;
  let gap = false;
  for (const event of events) {
    const applied = applyMessageEvent(message, event);
    message = applied.message;
    gap = gap || applied.result === 'gap';
  }
  return { message, gap };
}
