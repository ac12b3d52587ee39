/** Run statuses (Trigger.dev semantics) and how the dashboard shows them; WAITING is a run
 * suspended at a wait point (an approval), holding no worker (style/approvals.css: its colour). */

export const RUN_STATUSES = [
  'QUEUED',
  'DELAYED',
  'EXECUTING',
  'WAITING',
  'REATTEMPTING',
  'COMPLETED',
  'FAILED',
  'CANCELED',
  'CRASHED',
  'TIMED_OUT',
  'EXPIRED'
] as const;

// The final set has one home, shared with the notebook widgets' renderer.
export { FINAL_RUN_STATUSES, isFinalRun } from '../renderer/types';

/** CSS modifier for a status badge. */
export function statusClass(status: string): string {
  return `pj-badge pj-run-${status.toLowerCase()}`;
}

export function statusLabel(status: string): string {
  return status.toLowerCase().replace(/_/g, ' ');
}
