/**
 * Wire types shared by the lab sidebar and the notebook widget.
 *
 * They mirror the server contract (the OpenAPI document, labextension/openapi.json): names are camelCase,
 * times are ISO-8601 UTC strings.
 */

import type { components } from '../generated/openapi';

type Schemas = components['schemas'];

export type Message = Schemas['Message'];
export type MessageStatus = Message['status'];
export type ToolCall = Schemas['ToolCall'];
export type ToolCallStatus = ToolCall['status'];
/** A message error as the server sends it (a plain string is accepted too). */
export type MessageError = Schemas['MessageError'];
export type Conversation = Schemas['Conversation'];

export function messageErrorText(error: string | MessageError | null | undefined): { text: string; detail: string } {
  if (!error) {
    return { text: '', detail: '' };
  }
  if (typeof error === 'string') {
    return { text: error, detail: '' };
  }
  return { text: String(error.message ?? ''), detail: error.detail && error.detail !== error.message ? String(error.detail) : '' };
}

/** One entry of the global event log, as sent over the WebSocket (data typed loosely: each
 * event type has its own shape). */
export type PolarisEvent = Omit<Schemas['Event'], 'data'> & { data: Record<string, any> };

/** What the user can do from a chat view; the host wires these to REST or comm. */
export interface ChatActions {
  send(text: string, context?: ChatContext): void | Promise<unknown>;
  stop(messageId: string): void | Promise<unknown>;
  retry(messageId: string): void | Promise<unknown>;
  /** Undo a run's file edits; `force` overwrites files changed since (after a 409 conflict). */
  revert(runId: string, force?: boolean): void | Promise<unknown>;
  /** Called when the view saw a gap it cannot repair (missed delta, unknown message). */
  resync?(reason: string): void;
  /** Answer a tool call held for approval (`renderer/approvals.ts`); no buttons without it. */
  decide?(approvalId: string, decision: 'approve' | 'deny', scope: 'once' | 'run'): Promise<unknown>;
}

export interface ChatContext {
  currentFile?: string;
  /** What the user attached (chips, renderer/contextChips.ts); the server reads and sends them. */
  items?: Schemas['ContextItem'][];
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
