/**
 * Tool-call cards: what the assistant did, with arguments, outcome, duration,
 * and for file edits a colored diff plus "Revert this run".
 */

import { DecideApproval, renderApprovalBar } from './approvals';
import { diffStats, renderDiff } from './diff';
import { linkPath } from './paths';
import { formatDuration, h, prettyJson, shortJson } from './dom';
import { ToolCall } from './types';

const STATE_LABEL: Record<string, string> = {
  waiting: 'waiting for approval',
  running: 'running',
  succeeded: 'done',
  failed: 'failed'
};

/** One-line hint of the arguments: the path if there is one, else compact JSON. */
function argsHint(args: Record<string, unknown> | undefined): string {
  if (!args || typeof args !== 'object') {
    return '';
  }
  for (const key of ['path', 'command', 'query', 'pattern', 'searchTerm']) {
    const value = args[key];
    if (typeof value === 'string' && value) {
      return value.length > 60 ? `${value.slice(0, 59)}…` : value;
    }
  }
  const text = shortJson(args, 60);
  return text === '{}' ? '' : text;
}

/** Prefix of a revert state that is a conflict: files changed after the run. */
export const REVERT_CONFLICT = 'conflict:';

export interface ToolCardOptions {
  runId?: string | null;
  onRevert?: (runId: string, force?: boolean) => void;
  /** Set while a revert of this run is in flight or done: 'reverting' | 'reverted' |
   *  'conflict:' + why (files changed since the run; the button then offers to overwrite) |
   *  an error text. */
  revertState?: string;
  /** Answer a pending approval (the card's Approve / Deny buttons); no buttons without it. */
  onDecide?: DecideApproval;
}

/**
 * Render a card. `previous` (the card this one replaces) keeps its open or
 * closed sections so a re-render during streaming does not fold what the
 * user unfolded.
 */
export function renderToolCard(call: ToolCall, options: ToolCardOptions, previous?: HTMLElement): HTMLElement {
  const status = call.status in STATE_LABEL ? call.status : 'running';
  // Sections the previous card had keep their open state; new ones take their default.
  const previousOpen = new Map<string, boolean>();
  if (previous) {
    previous.querySelectorAll('details[data-section]').forEach(d => {
      previousOpen.set((d as HTMLElement).dataset.section ?? '', (d as HTMLDetailsElement).open);
    });
  }
  const section = (name: string, summary: Node | string, body: Node, openByDefault = false): HTMLElement => {
    const details = h('details', { className: `pj-tool-section pj-tool-${name}`, 'data-section': name });
    details.open = previousOpen.get(name) ?? openByDefault;
    details.appendChild(h('summary', null, summary));
    details.appendChild(body);
    return details;
  };

  const head = section(
    'card',
    h(
      'span',
      { className: 'pj-tool-head' },
      h('span', { className: `pj-tool-icon pj-tool-icon-${status}`, 'aria-hidden': 'true' }),
      h('span', { className: 'pj-tool-name' }, call.name || 'tool'),
      linkPath(h('span', { className: 'pj-tool-args', title: shortJson(call.arguments, 400) }, argsHint(call.arguments)), call.arguments?.path),
      h('span', { className: 'pj-tool-duration' }, status === 'running' ? '' : formatDuration(call.durationMs)),
      h('span', { className: `pj-badge pj-badge-${status}` }, STATE_LABEL[status])
    ),
    h('div', { className: 'pj-tool-body' })
  );
  const card = head as HTMLDetailsElement;
  card.className = `pj-tool pj-tool-${status}`;
  head.dataset.toolId = call.id;
  const body = head.querySelector('.pj-tool-body') as HTMLElement;

  if (call.summary) {
    body.appendChild(h('div', { className: 'pj-tool-summary' }, call.summary));
  }
  if (call.error) {
    body.appendChild(h('div', { className: 'pj-tool-error' }, call.error));
  }
  body.appendChild(
    section('arguments', 'Arguments', h('pre', { className: 'pj-tool-json' }, prettyJson(call.arguments ?? {})))
  );
  if (call.diff) {
    const stats = diffStats(call.diff);
    const label = h(
      'span',
      null,
      'Diff ',
      h('span', { className: 'pj-diff-stat-add' }, `+${stats.added}`),
      ' ',
      h('span', { className: 'pj-diff-stat-del' }, `−${stats.removed}`),
      stats.files.length ? ` ${stats.files.join(', ')}` : ''
    );
    body.appendChild(section('diff', label, renderDiff(call.diff), true));
    const runId = options.runId;
    if (runId && options.onRevert && status !== 'waiting') {
      const state = options.revertState;
      const busy = state === 'reverting' || state === 'reverted';
      const conflict = state?.startsWith(REVERT_CONFLICT) ? state.slice(REVERT_CONFLICT.length) : null;
      const button = h(
        'button',
        {
          className: conflict === null ? 'pj-button pj-button-secondary pj-revert' : 'pj-button pj-button-danger pj-revert pj-revert-force',
          type: 'button',
          title: conflict === null ? `Undo every file edit of run ${runId}` : 'Revert anyway, overwriting the changes made since the run',
          disabled: busy
        },
        state === 'reverting' ? 'Reverting…' : state === 'reverted' ? 'Reverted' : conflict !== null ? 'Revert anyway' : 'Revert this run'
      ) as HTMLButtonElement;
      button.addEventListener('click', () => options.onRevert?.(runId, conflict !== null));
      const actions = h('div', { className: 'pj-tool-actions' }, button);
      if (state && !busy) {
        actions.appendChild(h('span', { className: 'pj-tool-error' }, conflict ?? state));
      }
      body.appendChild(actions);
    }
  }
  const approval = renderApprovalBar(call, options.onDecide);
  if (approval) {
    body.appendChild(approval);
  }
  // The card opens by itself when it carries a diff or an error, unless the user folded or
  // unfolded it (then their choice sticks across re-renders).
  const userToggled = previous?.dataset.userToggled === '1';
  card.open = userToggled ? (previous as HTMLDetailsElement).open : Boolean(call.diff || call.error);
  if (userToggled) {
    card.dataset.userToggled = '1';
  }
  card.querySelector(':scope > summary')?.addEventListener('click', () => {
    card.dataset.userToggled = '1';
  });
  return card;
}
