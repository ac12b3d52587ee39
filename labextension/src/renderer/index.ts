/** The shared, framework-free renderer used by the lab sidebar, the notebook widgets and the
 *  `%polaris ask` output (answerMime.ts). */

export { ChatView, errorText } from './chatView';
export type { ChatViewOptions, ConnectionState } from './chatView';
export { ProgressView } from './progress';
export type { ProgressFile, ProgressSnapshot, ProgressStep, StepState } from './progress';
export { renderMarkdown, escapeHtml, isSafeUrl } from './markdown';
export { renderDiff, diffStats } from './diff';
export { applyMessageEvent, codePointLength, eventMessageId, mergeDelta, mergeMessage, reduceMessage, upsertToolCall } from './stream';
export type { AppliedEvent, EventResult } from './stream';
export { copyText, renderMessage } from './message';
export { ANSWER_MIME_TYPE, ANSWER_PAYLOAD_VERSION, parseAnswerPayload, renderAnswer } from './answer';
export type { ParsedAnswer } from './answer';
export type { MessageRenderOptions } from './message';
export * from './types';
