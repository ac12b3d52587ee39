/**
 * `Explain error` and `Fix with Polaris` under the error output of a notebook cell whose last
 * run raised (issue 13 item 5). Each starts a chat in the sidebar with the cell and its outputs
 * (the traceback) attached and the intent `explain` or `fix`; the server adds the variables the
 * cell uses and, for fix, asks for a proposeCellEdit, which the reply shows as a diff with
 * `Apply` / `Discard` (renderer/proposals.ts, registered here with the REST client).
 *
 * The buttons sit in the cell's output wrapper, next to (not inside) the output area, so
 * re-rendered outputs do not take them away; cells are rescanned at most once a frame when the
 * current notebook's content changes. The same two actions are in the cell toolbar of the active
 * cell when it raised (cellToolbar.ts); a rescan or a new active cell re-checks them.
 */

import type { ILabShell, JupyterFrontEnd } from '@jupyterlab/application';
import type { Widget } from '@lumino/widgets';

import { PolarisClient } from '../api';
import { registerCellToolbarCommands } from './cellToolbar';
import { h } from '../renderer/dom';
import { Proposal, setProposalClient } from '../renderer/proposals';
import type { ContextItem } from '../renderer/contextChips';
import type { ChatContext } from '../renderer/types';

export type Intent = 'explain' | 'fix';

/** What the sidebar's chat must offer (ChatPanel.sendIntent). */
export interface IntentChat {
  sendIntent(text: string, context: ChatContext, intent: Intent, title: string): Promise<void>;
}

interface CellLike {
  node: HTMLElement;
  model: { id: string; type: string; sharedModel: { getSource(): string }; outputs?: { toJSON(): Record<string, unknown>[] } };
}

interface NotebookPanelLike extends Widget {
  context: { path: string; model: { dirty: boolean }; revert(): Promise<void> };
  content: {
    widgets: readonly CellLike[];
    activeCell: CellLike | null;
    activeCellChanged: SignalLike;
    model: { contentChanged: SignalLike } | null;
  };
}

interface SignalLike {
  connect(fn: () => void): boolean;
  disconnect(fn: () => void): boolean;
}

const ACTIONS_CLASS = 'pj-error-actions';

function asNotebookPanel(widget: Widget | null): NotebookPanelLike | null {
  const w = widget as any;
  return w?.context?.path && Array.isArray(w?.content?.widgets) && 'activeCellIndex' in w.content ? (w as NotebookPanelLike) : null;
}

function errorOutputs(cell: CellLike): Record<string, unknown>[] | null {
  if (cell.model.type !== 'code' || !cell.model.outputs) {
    return null;
  }
  const outputs = cell.model.outputs.toJSON();
  return outputs.some(o => o.output_type === 'error') ? outputs : null;
}

/** The context of one failed cell: its source and its outputs (the traceback among them). */
export function failedCellContext(path: string, index: number, cell: CellLike, outputs: Record<string, unknown>[]): ChatContext {
  const items: ContextItem[] = [
    { kind: 'cell', path, cellIndex: index, cellId: cell.model.id, label: `Cell ${index + 1}`, source: cell.model.sharedModel.getSource() },
    { kind: 'outputs', path, cellIndex: index, cellId: cell.model.id, label: `Outputs of cell ${index + 1}`, outputs }
  ];
  return { currentFile: path, items };
}

/** Install the buttons and the proposal cards; returns a function that removes them. */
export function installExplainFix(app: JupyterFrontEnd, labShell: ILabShell, client: PolarisClient, chat: IntentChat, sidebarId: string): () => void {
  setProposalClient({
    list: runId => client.request<{ proposals: Proposal[] }>('GET', `runs/${encodeURIComponent(runId)}/proposals`).then(r => r.proposals ?? []),
    apply: id => client.request<Proposal>('POST', `proposals/${encodeURIComponent(id)}/apply`, {}),
    discard: id => client.request<Proposal>('POST', `proposals/${encodeURIComponent(id)}/discard`, {})
    // the open notebook follows an applied proposal through its proposal.updated event (followEdits.ts)
  });

  const ask = (panel: NotebookPanelLike, cell: CellLike, intent: Intent): void => {
    const index = panel.content.widgets.indexOf(cell);
    const outputs = errorOutputs(cell);
    if (index < 0 || !outputs) {
      return;
    }
    const name = panel.context.path.split('/').pop() || panel.context.path;
    const text = intent === 'explain' ? `Explain the error in cell ${index + 1} of ${name}.` : `Fix the error in cell ${index + 1} of ${name}.`;
    const title = intent === 'explain' ? `Explain: cell ${index + 1} of ${name}` : `Fix: cell ${index + 1} of ${name}`;
    app.shell.activateById(sidebarId);
    void chat.sendIntent(text, failedCellContext(panel.context.path, index, cell, outputs), intent, title);
  };
  const toolbar = registerCellToolbarCommands(app.commands, () => {
    const panel = asNotebookPanel(labShell.currentWidget);
    const cell = panel?.content.activeCell;
    return panel && cell && errorOutputs(cell) ? (intent: Intent) => ask(panel, cell, intent) : null;
  });
  const refreshToolbar = toolbar.refresh;

  const scan = (panel: NotebookPanelLike): void => {
    refreshToolbar();
    for (const cell of panel.content.widgets) {
      const wrapper = cell.node.querySelector<HTMLElement>('.jp-Cell-outputWrapper');
      const existing = cell.node.querySelector<HTMLElement>(`.${ACTIONS_CLASS}`);
      const failed = Boolean(errorOutputs(cell));
      if (!failed || !wrapper) {
        existing?.remove();
        continue;
      }
      if (existing) {
        continue;
      }
      const explain = h('button', { className: 'pj-button pj-button-secondary pj-explain-error', type: 'button', title: 'Ask Polaris why this cell failed' }, 'Explain error');
      const fix = h('button', { className: 'pj-button pj-fix-error', type: 'button', title: 'Ask Polaris for a fixed version of this cell (shown as a diff to apply)' }, 'Fix with Polaris');
      explain.addEventListener('click', () => ask(panel, cell, 'explain'));
      fix.addEventListener('click', () => ask(panel, cell, 'fix'));
      wrapper.appendChild(h('div', { className: ACTIONS_CLASS }, explain, fix));
    }
  };

  let watched: NotebookPanelLike | null = null;
  let frame = 0;
  const soon = (): void => {
    if (!frame) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        if (watched && !watched.isDisposed) {
          scan(watched);
        }
      });
    }
  };
  const follow = (): void => {
    const panel = asNotebookPanel(labShell.currentWidget);
    refreshToolbar();
    if (panel === watched) {
      return;
    }
    watched?.content.model?.contentChanged.disconnect(soon);
    watched?.content.activeCellChanged.disconnect(refreshToolbar);
    watched = panel;
    panel?.content.model?.contentChanged.connect(soon);
    panel?.content.activeCellChanged.connect(refreshToolbar);
    void (panel as any)?.context.ready?.then(soon);
    soon();
  };
  labShell.currentChanged.connect(follow);
  follow();
  return () => {
    labShell.currentChanged.disconnect(follow);
    watched?.content.model?.contentChanged.disconnect(soon);
    watched?.content.activeCellChanged.disconnect(refreshToolbar);
    toolbar.dispose();
    setProposalClient(null);
  };
}
