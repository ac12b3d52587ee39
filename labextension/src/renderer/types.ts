/**
 * Wire types shared by the lab sidebar and the notebook widget.
 *
 * They mirror the server contract (the OpenAPI document, labextension/openapi.json): names are camelCase,
 * times are ISO-8601 UTC strings.
 */

export type MessageStatus =
  | 'pending'
  | 'processing'
  | 'completed'
  | 'failed'
  | 'cancelled';

export type ToolCallStatus = 'running' | 'succeeded' | 'failed';

export interface ToolCall {
  id: string;
  name: string;
  arguments: Record<string, unknown>;
  status: ToolCallStatus;
  summary?: string | null;
  durationMs?: number | null;
  error?: string | null;
  /** Unified diff of a file edit, when the tool changed a file. */
  diff?: string | null;
}

/** A message error as the server sends it (a plain string is accepted too). */
export interface MessageError {
  message: string;
  detail?: string;
  attempt?: number;
  retrying?: boolean;
}

export function messageErrorText(error: string | MessageError | null | undefined): { text: string; detail: string } {
  if (!error) {
    return { text: '', detail: '' };
  }
  if (typeof error === 'string') {
    return { text: error, detail: '' };
  }
  return { text: String(error.message ?? ''), detail: error.detail && error.detail !== error.message ? String(error.detail) : '' };
}

export interface Message {
  id: string;
  conversationId: string;
  role: 'user' | 'assistant' | 'tool';
  content: string;
  status: MessageStatus;
  runId?: string | null;
  toolCalls?: ToolCall[];
  error?: string | MessageError | null;
  provider?: string | null;
  model?: string | null;
  usage?: Record<string, unknown> | null;
  /** Set when the answer's file edits were reverted (from any client). */
  revertedAt?: string | null;
  createdAt?: string;
  updatedAt?: string;
}

export interface Conversation {
  id: string;
  title: string;
  createdAt?: string;
  updatedAt?: string;
  workspace?: string;
}

/** One entry of the global event log, as sent over the WebSocket. */
export interface PolarisEvent {
  seq: number;
  runId: string | null;
  runSeq: number | null;
  conversationId: string | null;
  type: string;
  data: Record<string, any>;
  ts: string;
}

/** What the user can do from a chat view; the host wires these to REST or comm. */
export interface ChatActions {
  send(text: string, context?: ChatContext): void | Promise<unknown>;
  stop(messageId: string): void | Promise<unknown>;
  retry(messageId: string): void | Promise<unknown>;
  /** Undo a run's file edits; `force` overwrites files changed since (after a 409 conflict). */
  revert(runId: string, force?: boolean): void | Promise<unknown>;
  /** Called when the view saw a gap it cannot repair (missed delta, unknown message). */
  resync?(reason: string): void;
}

export interface ChatContext {
  currentFile?: string;
}

export interface ChatStatus {
  provider?: string | null;
  model?: string | null;
}

/** The message statuses after which nothing changes (but a retry, which starts a new run). */
export const FINAL_MESSAGE_STATUSES: ReadonlySet<string> = new Set<MessageStatus>(['completed', 'failed', 'cancelled']);

export function isFinalMessage(status: string): boolean {
  return FINAL_MESSAGE_STATUSES.has(status);
}

/**
 * The final run statuses (the server's `polaris_jupyter.jobs.FINAL_STATUSES`). `run.status`
 * events say so themselves (`data.final`); this set is for statuses read from a run row.
 */
export const FINAL_RUN_STATUSES: ReadonlySet<string> = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELED',
  'CRASHED',
  'TIMED_OUT',
  'EXPIRED'
]);

export function isFinalRun(status: string): boolean {
  return FINAL_RUN_STATUSES.has(status);
}

export function isActive(message: Message): boolean {
  return message.status === 'pending' || message.status === 'processing';
}
