/** The shared, framework-free renderer used by the lab sidebar and the notebook widgets. */

export { ChatView, errorText } from './chatView';
export type { ChatViewOptions, ConnectionState } from './chatView';
export { ProgressView } from './progress';
export type { ProgressFile, ProgressSnapshot, ProgressStep, StepState } from './progress';
export { renderMarkdown, escapeHtml, isSafeUrl } from './markdown';
export { renderDiff, diffStats } from './diff';
export { mergeDelta, mergeMessage, upsertToolCall } from './stream';
export * from './types';
