/**
 * What one inline completion asks the server (POST /polaris/api/v1/completions):
 * the text before and after the cursor, the editor's language, the document's
 * path and, in a notebook, the code cells above the active one (nearest first
 * within a budget; the server budgets again, tighter).
 *
 * Widgets are read by shape (a notebook panel has `content.widgets` and
 * `content.activeCellIndex`, every document widget `context.path`), so this
 * works for notebooks, file editors and anything alike without importing them.
 */

import type { CompletionHandler } from '@jupyterlab/completer';
import { Text } from '@jupyterlab/coreutils';
import type { Widget } from '@lumino/widgets';

import type { components } from '../generated/openapi';

export type CompletionRequest = components['schemas']['CompletionRequest'];

/** Characters of preceding cells sent at most (the server keeps fewer: completion_context_chars). */
export const CELLS_BUDGET_CHARS = 20_000;
/** Preceding cells sent at most. */
export const CELLS_BUDGET_COUNT = 50;

interface ICellLike {
  model: { id: string; type: string; sharedModel: { getSource(): string } };
}
interface INotebookLike {
  widgets: readonly ICellLike[];
  activeCellIndex: number;
}

function notebookOf(widget: Widget): INotebookLike | null {
  const content = (widget as any).content;
  if (content && Array.isArray(content.widgets) && typeof content.activeCellIndex === 'number') {
    return content as INotebookLike;
  }
  return null;
}

/** The editor's language from its MIME type: text/x-ipython → python, text/typescript → typescript. */
export function languageOf(mimeType: string): string {
  const mime = (mimeType || '').toLowerCase();
  if (mime.includes('ipythongfm') || mime.includes('markdown')) {
    return 'markdown';
  }
  if (mime.includes('python')) {
    return 'python';
  }
  const name = mime.replace(/^(text|application)\//, '').replace(/^x-/, '');
  return name || 'text';
}

/**
 * A stable id of the editor being completed: the notebook and its active cell,
 * or the document widget. The server cancels the previous completion of an id
 * when a new one arrives.
 */
export function editorIdOf(widget: Widget): string {
  const notebook = notebookOf(widget);
  const cell = notebook?.widgets[notebook.activeCellIndex];
  return cell ? `${widget.id}:${cell.model.id}` : widget.id || 'editor';
}

/** Sources of the code cells above the active cell, oldest first, nearest kept within the budget. */
export function precedingCells(widget: Widget): string[] {
  const notebook = notebookOf(widget);
  if (!notebook) {
    return [];
  }
  const kept: string[] = [];
  let room = CELLS_BUDGET_CHARS;
  for (let i = notebook.activeCellIndex - 1; i >= 0 && kept.length < CELLS_BUDGET_COUNT; i--) {
    const cell = notebook.widgets[i];
    if (cell?.model.type !== 'code') {
      continue;
    }
    const source = cell.model.sharedModel.getSource();
    if (!source.trim()) {
      continue;
    }
    if (source.length > room) {
      if (!kept.length) {
        kept.push(source.slice(-room)); // the nearest cell alone is too long: its end matters most
      }
      break;
    }
    kept.push(source);
    room -= source.length;
  }
  return kept.reverse();
}

export interface IRequestOptions {
  provider?: string;
  model?: string;
  maxTokens?: number;
}

/** The request body for JupyterLab's completion request in `widget`. */
export function buildRequest(
  request: CompletionHandler.IRequest,
  widget: Widget,
  options: IRequestOptions = {}
): CompletionRequest {
  const at = Text.charIndexToJsIndex(request.offset, request.text); // offset counts code points
  const body: CompletionRequest = {
    prefix: request.text.slice(0, at),
    suffix: request.text.slice(at),
    language: languageOf(request.mimeType ?? ''),
    editorId: editorIdOf(widget)
  };
  const path = (widget as any).context?.path;
  if (typeof path === 'string' && path) {
    body.path = path;
  }
  const cells = precedingCells(widget);
  if (cells.length) {
    body.cells = cells;
  }
  if (options.provider) {
    body.provider = options.provider;
  }
  if (options.model) {
    body.model = options.model;
  }
  if (options.maxTokens) {
    body.maxTokens = options.maxTokens;
  }
  return body;
}
