/**
 * Cell edits a reply proposed (the `proposeCellEdit` tool, e.g. after `Fix with Polaris`): each
 * as its diff with `Apply` (the server writes the cell; revertible with the run like the other
 * edits) and `Discard`. The proposals are fetched once a reply that called the tool has finished
 * (GET runs/{runId}/proposals) through the host's client (registered with setProposalClient; no
 * client, no cards — e.g. the notebook widget bundle). A refused Apply (409: the cell changed
 * since) shows the server's reason on the card.
 */

import { clear, h } from './dom';
import { renderDiff } from './diff';
import { isFinalMessage, Message } from './types';
import type { components } from '../generated/openapi';

export type Proposal = components['schemas']['Proposal'];

export interface ProposalClient {
  list(runId: string): Promise<Proposal[]>;
  apply(proposalId: string): Promise<Proposal>;
  discard(proposalId: string): Promise<Proposal>;
  /** Called after an Apply (e.g. reload the notebook if it is open and unchanged). */
  applied?(proposal: Proposal): void;
}

const PROPOSE_TOOL = 'proposeCellEdit';
let client: ProposalClient | null = null;
/** Per run: its proposals (fetched once per run; Apply/Discard update the entry). */
const byRun = new Map<string, Promise<Proposal[]>>();
const STATUS_TEXT: Record<Proposal['status'], string> = { pending: 'proposed', applied: 'applied', discarded: 'discarded' };

export function setProposalClient(next: ProposalClient | null): void {
  client = next;
  byRun.clear();
}

/** The proposals of a finished reply that called proposeCellEdit (filled in when fetched). */
export function renderProposals(m: Message): HTMLElement | null {
  const runId = m.runId;
  if (!client || !runId || m.role !== 'assistant' || !isFinalMessage(m.status) || !m.toolCalls?.some(c => c.name === PROPOSE_TOOL)) {
    return null;
  }
  const host = h('div', { className: 'pj-proposals', 'data-run-id': runId });
  let pending = byRun.get(runId);
  if (!pending) {
    pending = client.list(runId);
    byRun.set(runId, pending);
    pending.catch(() => byRun.delete(runId)); // a later redraw asks again
  }
  pending.then(
    proposals => fill(host, proposals),
    error => host.appendChild(h('div', { className: 'pj-msg-error-text' }, `Cannot load the proposed edit: ${text(error)}`))
  );
  return host;
}

function text(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function fill(host: HTMLElement, proposals: Proposal[]): void {
  clear(host);
  for (const proposal of proposals) {
    host.appendChild(card(proposal));
  }
}

function card(proposal: Proposal): HTMLElement {
  const el = h('div', { className: `pj-proposal pj-proposal-${proposal.status}`, 'data-proposal-id': proposal.id });
  const cell = `cell ${proposal.cellIndex + 1} of ${proposal.path}`;
  el.appendChild(
    h(
      'div',
      { className: 'pj-proposal-head' },
      h('span', { className: 'pj-proposal-title' }, `Proposed edit: ${cell}`),
      h('span', { className: `pj-badge pj-badge-${proposal.status}` }, STATUS_TEXT[proposal.status] ?? proposal.status)
    )
  );
  if (proposal.explanation) {
    el.appendChild(h('div', { className: 'pj-proposal-explanation' }, proposal.explanation));
  }
  el.appendChild(renderDiff(proposal.diff));
  const note = h('div', { className: 'pj-proposal-note', role: 'status' });
  if (proposal.status === 'pending' && client) {
    const actions = client;
    const apply = h('button', { className: 'pj-button pj-proposal-apply', type: 'button', title: `Write this edit into ${cell}` }, 'Apply');
    const discard = h('button', { className: 'pj-button pj-button-secondary pj-proposal-discard', type: 'button', title: 'Drop this proposal' }, 'Discard');
    const decide = (act: () => Promise<Proposal>, verb: string): void => {
      apply.disabled = discard.disabled = true;
      note.textContent = '';
      act().then(
        updated => {
          update(updated);
          if (updated.status === 'applied') {
            actions.applied?.(updated);
          }
        },
        error => {
          apply.disabled = discard.disabled = false;
          note.textContent = `Could not ${verb}: ${text(error)}`;
          note.classList.add('pj-msg-error-text');
        }
      );
    };
    apply.addEventListener('click', () => decide(() => actions.apply(proposal.id), 'apply'));
    discard.addEventListener('click', () => decide(() => actions.discard(proposal.id), 'discard'));
    el.appendChild(h('div', { className: 'pj-msg-actions' }, apply, discard));
  }
  el.appendChild(note);
  return el;
}

/** A proposal changed: its run's cached list and every card of it. */
function update(proposal: Proposal): void {
  const list = byRun.get(proposal.runId);
  if (list) {
    byRun.set(proposal.runId, list.then(items => items.map(p => (p.id === proposal.id ? proposal : p))));
  }
  document.querySelectorAll<HTMLElement>(`.pj-proposal[data-proposal-id="${CSS.escape(proposal.id)}"]`).forEach(old => old.replaceWith(card(proposal)));
}

/** A proposal changed elsewhere (a `proposal.updated` event): its cached list and cards. */
export const proposalUpdated = update;
