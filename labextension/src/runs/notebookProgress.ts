/**
 * Per-cell progress of a run-notebook run in the run detail: a bar "cell k / total" from the
 * run's metadata (`{cell, total, outputs, error}`) and its `notebook.cell` events, each cell of
 * the current attempt with its status and duration, the failing cell's error with its
 * traceback tail, and buttons that open the executed notebook / its HTML in JupyterLab.
 *
 * Opening an output is the host's business (JupyterLab: `docmanager:open` on the read-only
 * job-outputs drive): the plugin that has the command registry calls {@link setOpenPath} once.
 */

import type { RunDetail } from '../api';
import { formatDuration, h } from '../renderer/dom';
import type { PolarisEvent } from '../renderer/types';
import { isFinalRun } from './status';

export const RUN_NOTEBOOK_TASK = 'run-notebook';
export const CELL_EVENT = 'notebook.cell';

/** Opens the output `path` (workspace-relative) of run `runId`. */
export type OutputOpener = (runId: string, path: string) => unknown;

let openPath: OutputOpener | null = null;

/** Let the buttons open a run's outputs. */
export function setOpenPath(open: OutputOpener): void {
  openPath = open;
}

interface CellEnd {
  index: number;
  cellId?: string | null;
  cellType?: string;
  durationMs?: number;
  status?: string;
  attempt?: number;
  total?: number;
  error?: { ename?: string; evalue?: string; traceback?: string[] } | null;
}

/** Whether the run detail should show the notebook section for this run. */
export function isNotebookRun(run: RunDetail, events: PolarisEvent[]): boolean {
  return run.taskId === RUN_NOTEBOOK_TASK || events.some(e => e.type === CELL_EVENT);
}

/** The notebook section's content for `run`, from its metadata and `notebook.cell` events. */
export function notebookProgress(run: RunDetail, events: PolarisEvent[]): HTMLElement {
  const metadata = (run.metadata ?? {}) as Record<string, any>;
  const ends = events.filter(e => e.type === CELL_EVENT).map(e => e.data as CellEnd);
  const attempt = Math.max(run.attemptCount ?? 0, ...ends.map(e => e.attempt ?? 0), 1);
  const cells = new Map<number, CellEnd>();
  for (const end of ends.filter(e => (e.attempt ?? attempt) === attempt)) {
    cells.set(end.index, end);
  }
  const total = Number(metadata.total ?? ends[ends.length - 1]?.total ?? 0);
  const started = Number(metadata.cell ?? 0); // 1-based: the cell running (or last started)
  const done = cells.size;
  const final = isFinalRun(run.status);
  const percent = total ? Math.min(100, Math.round((100 * (final && run.status === 'COMPLETED' ? total : done)) / total)) : 0;
  const label = !total
    ? final ? 'no cell ran' : 'starting the kernel…'
    : run.status === 'COMPLETED'
      ? `${total} / ${total} cells`
      : final
        ? `stopped at cell ${Math.max(started, 1)} / ${total}`
        : `cell ${Math.max(started, 1)} / ${total}`;

  const bar = h(
    'div',
    {
      className: `pj-progress-bar pj-notebook-bar${final && run.status !== 'COMPLETED' ? ' pj-notebook-bar-stopped' : ''}`,
      role: 'progressbar',
      'aria-label': 'Notebook progress',
      'aria-valuemin': 0,
      'aria-valuemax': total || 1,
      'aria-valuenow': done,
      'aria-valuetext': label
    },
    h('div', { className: 'pj-progress-fill', style: `width: ${percent}%` })
  );
  const parts: HTMLElement[] = [
    h(
      'div',
      { className: 'pj-progress-header' },
      h('span', { className: 'pj-progress-title' }, attempt > 1 ? `Attempt ${attempt}` : 'Cells'),
      h('span', { className: 'pj-progress-count pj-notebook-count' }, label)
    ),
    bar
  ];

  const failure = failingCell(metadata, cells);
  if (failure) {
    parts.push(
      h(
        'div',
        { className: 'pj-notebook-error', role: 'alert' },
        h('div', { className: 'pj-notebook-error-title' }, failure.title),
        failure.traceback ? h('pre', { className: 'pj-pre pj-notebook-traceback' }, failure.traceback) : null
      )
    );
  }

  if (cells.size) {
    const list = h('ol', { className: 'pj-notebook-cells', start: 0 });
    for (const cell of [...cells.values()].sort((a, b) => a.index - b.index)) {
      const failed = cell.status === 'error';
      list.appendChild(
        h(
          'li',
          { className: `pj-notebook-cell ${failed ? 'pj-notebook-cell-error' : 'pj-notebook-cell-ok'}`, value: cell.index, 'data-cell-index': cell.index },
          h('span', { className: 'pj-step-icon', 'aria-hidden': 'true' }, failed ? '✗' : '✓'),
          h('span', { className: 'pj-notebook-cell-name' }, `cell ${cell.index}`, cell.cellType && cell.cellType !== 'code' ? ` (${cell.cellType})` : ''),
          h('span', { className: 'pj-muted pj-notebook-cell-time' }, formatDuration(cell.durationMs))
        )
      );
    }
    parts.push(list);
  }

  parts.push(outputLinks(run, metadata));
  return h('div', { className: 'pj-progress pj-notebook-progress', 'data-run-id': run.id }, ...parts);
}

function failingCell(metadata: Record<string, any>, cells: Map<number, CellEnd>): { title: string; traceback: string } | null {
  const failed = [...cells.values()].find(c => c.status === 'error');
  const error = metadata.error ?? (failed ? { cell: failed.index, cellId: failed.cellId, ...failed.error } : null);
  if (!error) {
    return null;
  }
  const index = Number(error.cell ?? failed?.index ?? -1);
  const where = `Cell ${index}` + (error.cellId ? ` (id ${error.cellId})` : '');
  const what = [error.ename, error.evalue].filter(Boolean).join(': ') || 'failed';
  const lines = cells.get(index)?.error?.traceback ?? failed?.error?.traceback ?? [];
  const traceback = lines.filter(line => !/^-{8,}\s*$/.test(line)).join('\n'); // IPython's rule line
  return { title: `${where} raised ${what}`, traceback };
}

function outputLinks(run: RunDetail, metadata: Record<string, any>): HTMLElement {
  const output = run.output && typeof run.output === 'object' ? (run.output as Record<string, any>) : {};
  const outputs: Record<string, string> = output.outputs ?? metadata.outputs ?? {};
  const final = isFinalRun(run.status);
  const holder = h('div', { className: 'pj-notebook-outputs' });
  const entries = Object.entries(outputs).filter(([, path]) => typeof path === 'string' && path);
  if (!entries.length) {
    return holder;
  }
  if (!final) {
    holder.append(h('span', { className: 'pj-muted' }, `Outputs go to ${entries[0][1].replace(/[^/]*$/, '')}`));
    return holder;
  }
  const partial = run.status !== 'COMPLETED';
  const htmlWritten = !partial || (run.status === 'FAILED' && Boolean(metadata.error)); // after the last cell ran
  for (const [format, path] of entries) {
    if (format === 'html' && !htmlWritten) {
      continue;
    }
    const label = format === 'html' ? 'Open HTML' : partial ? 'Open partial notebook' : 'Open executed notebook';
    const button = h('button', { className: 'pj-button pj-button-secondary pj-open-output', type: 'button', title: path, 'data-format': format }, label);
    button.addEventListener('click', () => {
      if (openPath) {
        void openPath(run.id, path);
      }
    });
    holder.append(button);
  }
  holder.append(h('code', { className: 'pj-muted pj-notebook-folder' }, entries[0][1].replace(/[^/]*$/, '')));
  return holder;
}
