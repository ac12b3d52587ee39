/**
 * What the user is looking at in JupyterLab, as context items for the chat: the active notebook
 * or file, the selected cells or the editor's selection (their live sources, unsaved edits
 * included), and the active cell's outputs (nbformat, as shown; the server summarises images and
 * keeps tracebacks). Watched through the widgets' own signals, recomputed at most once a frame.
 *
 * Notebook and editor widgets are recognised by shape (content.activeCell, content.editor) so the
 * extension needs no dependency on @jupyterlab/notebook or @jupyterlab/fileeditor.
 */

import type { ILabShell } from '@jupyterlab/application';
import type { ISignal } from '@lumino/signaling';
import type { Widget } from '@lumino/widgets';

import type { ContextItem } from '../renderer/contextChips';
import type { ChatContext } from '../renderer/types';

/** At most this many selected cells are offered (each is its own chip). */
const MAX_SELECTED_CELLS = 8;

/**
 * Each gather is one User Timing measure of this name (always on: one `performance.measure` per
 * publish, at most once a frame; `detail.items` is how many items it gathered);
 * bench/context_gather_browser.py reads them. The buffer is
 * cleared after this many, so a long session does not grow it.
 */
export const GATHER_MEASURE = 'polaris:context-gather';
const MAX_GATHER_MEASURES = 1000;
let gatherMeasures = 0;

function measureGather(startMs: number, items: number): void {
  try {
    if (++gatherMeasures > MAX_GATHER_MEASURES) {
      performance.clearMeasures(GATHER_MEASURE);
      gatherMeasures = 1;
    }
    performance.measure(GATHER_MEASURE, { start: startMs, end: performance.now(), detail: { items } });
  } catch {
    // A browser without measure options: no figure, the context is still published.
  }
}

type AnySignal = ISignal<any, any>;

interface CellLike {
  model: {
    id: string;
    type: string;
    sharedModel: { getSource(): string; changed?: AnySignal };
    outputs?: { length: number; toJSON(): Record<string, unknown>[]; changed?: AnySignal };
  };
  editor?: EditorLike | null;
}

interface EditorLike {
  getSelection(): { start: { line: number; column: number }; end: { line: number; column: number } };
  getOffsetAt(position: { line: number; column: number }): number;
  model: { sharedModel: { getSource(): string }; selections?: { changed: AnySignal } };
}

interface NotebookLike {
  activeCell: CellLike | null;
  activeCellIndex: number;
  widgets: readonly CellLike[];
  isSelectedOrActive(cell: CellLike): boolean;
  activeCellChanged: AnySignal;
  selectionChanged: AnySignal;
  model: { contentChanged: AnySignal } | null;
}

interface DocumentLike extends Widget {
  context: { path: string };
  content: unknown;
}

function asDocument(widget: Widget | null): DocumentLike | null {
  const path = (widget as any)?.context?.path;
  return typeof path === 'string' && path ? (widget as DocumentLike) : null;
}

function asNotebook(content: unknown): NotebookLike | null {
  const c = content as any;
  return c && 'activeCellIndex' in c && Array.isArray(c.widgets) && c.activeCellChanged ? (c as NotebookLike) : null;
}

function asEditor(content: unknown): EditorLike | null {
  const editor = (content as any)?.editor;
  return editor && typeof editor.getSelection === 'function' ? (editor as EditorLike) : null;
}

/** The text the editor has selected, with 1-based lines; null when nothing is selected. */
function selectionOf(editor: EditorLike | null | undefined): { source: string; startLine: number; endLine: number } | null {
  if (!editor) {
    return null;
  }
  const { start, end } = editor.getSelection();
  const from = editor.getOffsetAt(start);
  const to = editor.getOffsetAt(end);
  if (from === to) {
    return null;
  }
  const source = editor.model.sharedModel.getSource().slice(Math.min(from, to), Math.max(from, to));
  return source.trim() ? { source, startLine: Math.min(start.line, end.line) + 1, endLine: Math.max(start.line, end.line) + 1 } : null;
}

/** The context items of a widget in the main area (none for a widget that is not a document). */
export function contextItemsOf(widget: Widget | null): ContextItem[] {
  const doc = asDocument(widget);
  if (!doc) {
    return [];
  }
  const path = doc.context.path;
  const name = path.split('/').pop() || path;
  const notebook = asNotebook(doc.content);
  if (notebook) {
    const items: ContextItem[] = [{ kind: 'notebook', path, label: name }];
    const active = notebook.activeCell;
    const selection = selectionOf(active?.editor);
    if (active && selection) {
      items.push({ kind: 'selection', path, label: `Selection in cell ${notebook.activeCellIndex + 1}`, ...selection });
    }
    const selected = notebook.widgets.map((cell, index) => ({ cell, index })).filter(({ cell }) => notebook.isSelectedOrActive(cell));
    for (const { cell, index } of selected.slice(0, MAX_SELECTED_CELLS)) {
      items.push({ kind: 'cell', path, cellIndex: index, cellId: cell.model.id, label: `Cell ${index + 1}`, source: cell.model.sharedModel.getSource() });
    }
    const outputs = active?.model.outputs;
    if (active && outputs && outputs.length > 0) {
      const index = notebook.activeCellIndex;
      items.push({ kind: 'outputs', path, cellIndex: index, cellId: active.model.id, label: `Outputs of cell ${index + 1}`, outputs: outputs.toJSON() });
    }
    return items;
  }
  const editor = asEditor(doc.content);
  const items: ContextItem[] = [{ kind: 'file', path, label: name, ...(editor ? { source: editor.model.sharedModel.getSource() } : {}) }];
  const selection = selectionOf(editor);
  if (selection) {
    items.push({ kind: 'selection', path, label: `${name}:${selection.startLine}-${selection.endLine}`, ...selection });
  }
  return items;
}

/**
 * Keep `target` told what the current document offers as context. Returns a function that
 * stops watching.
 */
export function followLabContext(labShell: ILabShell, target: { setContext(context: ChatContext | null): void }): () => void {
  let watched: { signal: AnySignal; slot: () => void }[] = [];
  let frame = 0;
  const publish = (): void => {
    frame = 0;
    const widget = labShell.currentWidget;
    const doc = asDocument(widget);
    const startMs = performance.now();
    const items = doc ? contextItemsOf(widget) : [];
    measureGather(startMs, items.length);
    target.setContext(doc ? { currentFile: doc.context.path, items } : null);
  };
  const soon = (): void => {
    if (!frame) {
      frame = requestAnimationFrame(publish);
    }
  };
  const unwatch = (): void => {
    watched.forEach(({ signal, slot }) => signal.disconnect(slot));
    watched = [];
  };
  const watch = (signal: AnySignal | undefined | null): void => {
    if (signal && signal.connect(soon)) {
      watched.push({ signal, slot: soon });
    }
  };
  const follow = (): void => {
    unwatch();
    const doc = asDocument(labShell.currentWidget);
    const notebook = doc && asNotebook(doc.content);
    if (notebook) {
      watch(notebook.activeCellChanged);
      watch(notebook.selectionChanged);
      watch(notebook.model?.contentChanged);
      const active = notebook.activeCell;
      watch(active?.model.outputs?.changed);
      watch(active?.model.sharedModel.changed);
      watch(active?.editor?.model.selections?.changed);
      // The active cell changes: follow the new one's outputs and selection.
      const refollow = (): void => follow();
      if (notebook.activeCellChanged.connect(refollow)) {
        watched.push({ signal: notebook.activeCellChanged, slot: refollow });
      }
    } else if (doc) {
      const editor = asEditor(doc.content);
      watch(editor?.model.selections?.changed);
      watch((editor?.model.sharedModel as any)?.changed);
    }
    soon();
  };
  labShell.currentChanged.connect(follow);
  follow();
  return () => {
    labShell.currentChanged.disconnect(follow);
    unwatch();
    if (frame) {
      cancelAnimationFrame(frame);
    }
  };
}
