/**
 * A reply in the order the model wrote it: the text split where the tool calls started, so
 * each tool card stands between the text before and after it (issue 13, item 6).
 *
 * A call's `offset` counts code points of the message's text, like `message.delta` offsets. A
 * split never falls inside a fenced code block (each piece's markdown is rendered alone, so a
 * split fence would show as two broken blocks): it moves to just after the closing fence.
 */

import { ToolCall } from './types';

export type ReplySegment = { kind: 'text'; text: string } | { kind: 'calls'; calls: ToolCall[] };

const FENCE = /^ {0,3}(`{3,}|~{3,})/;

/** [start, end) UTF-16 ranges of the fenced code blocks of `text` (an unclosed one runs to the end). */
export function fenceRanges(text: string): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let open: { char: string; size: number; start: number } | null = null;
  let at = 0;
  while (at <= text.length) {
    const newline = text.indexOf('\n', at);
    const end = newline < 0 ? text.length : newline + 1;
    const match = FENCE.exec(text.slice(at, newline < 0 ? text.length : newline));
    if (match) {
      const fence = match[1];
      if (open === null) {
        open = { char: fence[0], size: fence.length, start: at };
      } else if (fence[0] === open.char && fence.length >= open.size && /^\s*$/.test(text.slice(at + match[0].length, end))) {
        ranges.push([open.start, end]);
        open = null;
      }
    }
    if (newline < 0) {
      break;
    }
    at = end;
  }
  if (open !== null) {
    ranges.push([open.start, text.length]);
  }
  return ranges;
}

/** The UTF-16 index of code point `offset` of `text` (clamped to its end). */
function utf16Index(text: string, offset: number): number {
  let index = 0;
  for (let n = 0; n < offset && index < text.length; n++) {
    const code = text.charCodeAt(index);
    index += code >= 0xd800 && code <= 0xdbff && index + 1 < text.length ? 2 : 1;
  }
  return index;
}

/**
 * The text and the tool calls in reading order. Calls without an offset (answers from before
 * offsets were recorded) come first, above all the text, as they always did; calls at the same
 * place share one group, in call order. Empty text pieces are left out.
 */
export function replySegments(text: string, calls: ToolCall[] = []): ReplySegment[] {
  const fences = fenceRanges(text);
  const placed = new Map<number, ToolCall[]>();
  const unplaced: ToolCall[] = [];
  for (const call of calls) {
    const offset = call.offset;
    if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0) {
      unplaced.push(call);
      continue;
    }
    let index = utf16Index(text, offset);
    const fence = fences.find(([start, end]) => start < index && index < end);
    if (fence) {
      index = fence[1];
    }
    const group = placed.get(index) ?? [];
    group.push(call);
    placed.set(index, group);
  }
  const segments: ReplySegment[] = unplaced.length ? [{ kind: 'calls', calls: unplaced }] : [];
  let from = 0;
  for (const index of [...placed.keys()].sort((a, b) => a - b)) {
    if (index > from) {
      segments.push({ kind: 'text', text: text.slice(from, index) });
    }
    segments.push({ kind: 'calls', calls: placed.get(index)! });
    from = Math.max(from, index);
  }
  if (from < text.length) {
    segments.push({ kind: 'text', text: text.slice(from) });
  }
  return segments;
}
