/** Run statuses (Trigger.dev semantics) and how the dashboard shows them. */

export const RUN_STATUSES = [
  'QUEUED',
  'DELAYED',
  'EXECUTING',
  'REATTEMPTING',
  'COMPLETED',
  'FAILED',
  'CANCELED',
  'CRASHED',
  'TIMED_OUT',
  'EXPIRED'
] as const;

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

/** CSS modifier for a status badge. */
export function statusClass(status: string): string {
  return `pj-badge pj-run-${status.toLowerCase()}`;
}

export function statusLabel(status: string): string {
  return status.toLowerCase().replace(/_/g, ' ');
}
