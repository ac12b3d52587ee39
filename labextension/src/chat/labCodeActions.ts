/**
 * The lab's actions for the code blocks of replies (renderer/codeActions.ts): `Insert below`
 * adds a code cell under the active cell of the active notebook — the notebook last current in
 * the main area, so it still counts while the user is typing in the chat sidebar —, `Replace cell`
 * shows the change of the active cell as a diff and replaces its source on confirmation (the
 * notebook's own undo takes it back), `Run` inserts below and executes it in the notebook's kernel
 * (`notebook:run-cell` on that notebook, without stealing the chat's focus).
 */

import type { ILabShell, JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { errorText } from '../renderer/chatView';
import { lineDiff, setCodeActions } from '../renderer/codeActions';
import { diffStats, renderDiff } from '../renderer/diff';
import { h } from '../renderer/dom';

interface CellModelLike {
  type: string;
  sharedModel: { getSource(): string; setSource(source: string): void };
}

interface NotebookLike {
  activeCellIndex: number;
  activeCell: { model: CellModelLike } | null;
  widgets: readonly unknown[];
  model: { sharedModel: { insertCell(index: number, cell: Record<string, unknown>): unknown } } | null;
  deselectAll?(): void;
}

interface NotebookPanelLike extends Widget {
  content: NotebookLike;
  context: { path: string };
}

function asNotebookPanel(widget: Widget | null): NotebookPanelLike | null {
  const content = (widget as any)?.content;
  return content && 'activeCellIndex' in content && Array.isArray(content.widgets) && content.model?.sharedModel ? (widget as NotebookPanelLike) : null;
}

/** Register the lab's code block actions; returns a function that removes them. */
export function installLabCodeActions(app: JupyterFrontEnd, labShell: ILabShell): () => void {
  let last: NotebookPanelLike | null = asNotebookPanel(labShell.currentWidget);
  const follow = (): void => {
    last = asNotebookPanel(labShell.currentWidget) ?? last;
  };
  labShell.currentChanged.connect(follow);

  const notebook = (): NotebookPanelLike => {
    if (!last || last.isDisposed) {
      last = null;
      throw new Error('Open a notebook first: the code goes into its active cell');
    }
    return last;
  };

  const insertBelow = (code: string): NotebookPanelLike => {
    const panel = notebook();
    const nb = panel.content;
    if (!nb.model) {
      throw new Error(`${panel.context.path} is still loading`);
    }
    const index = nb.widgets.length ? nb.activeCellIndex + 1 : 0;
    nb.model.sharedModel.insertCell(index, { cell_type: 'code', source: code, metadata: {} });
    nb.activeCellIndex = index;
    nb.deselectAll?.();
    return panel;
  };

  setCodeActions({
    insertBelow: async code => {
      insertBelow(code);
    },
    run: async code => {
      const panel = insertBelow(code);
      await app.commands.execute('notebook:run-cell', { semanticWidget: panel.id, activate: false });
    },
    replaceCell: async code => {
      const panel = notebook();
      const cell = panel.content.activeCell;
      if (!cell) {
        throw new Error(`${panel.context.path} has no active cell to replace`);
      }
      const before = cell.model.sharedModel.getSource();
      if (before === code) {
        Notification.info('The active cell already has this code.', { autoClose: 4000 });
        return;
      }
      const diff = lineDiff(before, code);
      const stats = diffStats(diff);
      const body = h(
        'div',
        { className: 'pj-replace-cell' },
        h('div', { className: 'pj-replace-cell-summary' }, `Cell ${panel.content.activeCellIndex + 1} of ${panel.context.path}: +${stats.added} −${stats.removed} lines`),
        renderDiff(diff)
      );
      const result = await showDialog({
        title: 'Replace cell',
        body: new Widget({ node: body }),
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Replace' })]
      });
      if (result.button.accept) {
        cell.model.sharedModel.setSource(code);
      }
    },
    report: error => {
      Notification.error(`Polaris: ${errorText(error)}`, { autoClose: 6000 });
    }
  });
  return () => {
    labShell.currentChanged.disconnect(follow);
    setCodeActions(null);
  };
}
