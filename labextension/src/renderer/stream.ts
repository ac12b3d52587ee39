/**
 * Pure helpers for applying streamed chat events to messages.
 *
 * Deltas carry the char offset where they start, so applying one twice, or a
 * snapshot that already contains it, is harmless; a delta that starts past
 * the end of what we have means we missed one (a gap) and must resync.
 */

import { Message, ToolCall } from './types';

export type DeltaResult = 'applied' | 'duplicate' | 'gap';

export interface MergedDelta {
  content: string;
  result: DeltaResult;
}

/** Apply `delta` starting at `offset` to `content`. */
export function mergeDelta(content: string, offset: number, delta: string): MergedDelta {
  if (!Number.isInteger(offset) || offset < 0) {
    return { content, result: 'gap' };
  }
  if (offset > content.length) {
    return { content, result: 'gap' };
  }
  const end = offset + delta.length;
  if (end <= content.length) {
    return { content, result: 'duplicate' };
  }
  // Overlap: keep what we have, append only the new tail.
  return { content: content + delta.slice(content.length - offset), result: 'applied' };
}

/** Insert or replace a tool call (by id) in a message's list; returns a new list. */
export function upsertToolCall(calls: ToolCall[] | undefined, call: ToolCall): ToolCall[] {
  const list = calls ? [...calls] : [];
  const index = list.findIndex(c => c.id === call.id);
  if (index >= 0) {
    // A late "started" must not undo a "finished".
    if (list[index].status !== 'running' && call.status === 'running') {
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
  if (isFinal(existing.status) && !isFinal(incoming.status)) {
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

export function isFinal(status: string): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}
