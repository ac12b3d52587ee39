/**
 * A tool call held for the user's consent, on its card: `Approve`, `Deny` and
 * `Approve all in this run` while its approval is pending (the diff it would apply
 * is the card's Diff section), then what was decided. Host-agnostic: the sidebar
 * wires `onDecide` to REST, the notebook panel to its comm.
 */

import { h } from './dom';
import { ToolCall } from './types';

export type ApprovalDecision = 'approve' | 'deny';
export type ApprovalScope = 'once' | 'run';
export type DecideApproval = (approvalId: string, decision: ApprovalDecision, scope: ApprovalScope) => Promise<unknown> | void;

type ApprovalRef = NonNullable<ToolCall['approval']>;

function decidedText(approval: ApprovalRef): string {
  switch (approval.status) {
    case 'approved':
      return approval.scope === 'run' ? 'Approved for this run' : 'Approved';
    case 'denied':
      return 'Denied';
    case 'expired':
      return approval.reason ? `Expired: ${approval.reason}` : 'Expired';
    default:
      return 'Waiting for approval';
  }
}

/**
 * The approval row of a card, or null when the call was never held. Buttons only with
 * `onDecide` (an answer still running); a click disables them until the server answers, and
 * a refusal (already decided elsewhere, the run ended) is shown in the row.
 */
export function renderApprovalBar(call: ToolCall, onDecide?: DecideApproval): HTMLElement | null {
  const approval = call.approval;
  if (!approval) {
    return null;
  }
  const bar = h('div', { className: `pj-approval pj-approval-${approval.status}`, 'data-approval-id': approval.id });
  if (approval.status !== 'pending' || !onDecide) {
    bar.appendChild(h('span', { className: 'pj-approval-state' }, decidedText(approval)));
    return bar;
  }
  const note = h('span', { className: 'pj-approval-note', role: 'status' }, 'Polaris waits for your approval.');
  const button = (label: string, className: string, decision: ApprovalDecision, scope: ApprovalScope, title: string): HTMLButtonElement =>
    h('button', { className: `pj-button ${className}`, type: 'button', title, 'data-decision': `${decision}:${scope}` }, label) as HTMLButtonElement;
  const buttons = [
    button('Approve', 'pj-button-primary pj-approve', 'approve', 'once', `Run ${call.name} this once`),
    button('Deny', 'pj-button-danger pj-deny', 'deny', 'once', `Do not run ${call.name}; the model is told you denied it`),
    button('Approve all in this run', 'pj-button-secondary pj-approve-run', 'approve', 'run',
      'Approve this and every other call of this answer that would ask')
  ];
  for (const b of buttons) {
    b.addEventListener('click', () => {
      const [decision, scope] = (b.dataset.decision ?? 'deny:once').split(':') as [ApprovalDecision, ApprovalScope];
      buttons.forEach(other => (other.disabled = true));
      note.textContent = decision === 'approve' ? 'Approving…' : 'Denying…';
      Promise.resolve(onDecide(approval.id, decision, scope)).catch((error: unknown) => {
        buttons.forEach(other => (other.disabled = false));
        note.textContent = error instanceof Error ? error.message : String(error);
        note.classList.add('pj-tool-error');
      });
    });
  }
  bar.append(note, h('span', { className: 'pj-approval-buttons' }, ...buttons));
  return bar;
}

/** The approval fields a card keeps, from an `approval.decided` event's `approval`. */
export function approvalRef(approval: Record<string, any>): ApprovalRef {
  return {
    id: String(approval.id),
    status: approval.status,
    scope: approval.scope ?? null,
    expiresAt: approval.expiresAt ?? null,
    reason: approval.reason ?? null
  };
}
