/**
 * Files dragged from JupyterLab's file browser onto the chat attach as chips (issue 13 item 2),
 * in the sidebar chat and the notebook ChatPanel alike (both are a ChatView).
 *
 * The file browser does not use the browser's native drag and drop: it starts a lumino drag
 * (@lumino/dragdrop), which dispatches `lm-dragenter` / `lm-dragover` / `lm-dragleave` /
 * `lm-drop` DOM events whose `mimeData` carries the dragged paths under
 * `application/x-jupyter-icontents` (every selected path) and the contents model of one of them
 * under `application/x-jupyter-icontentsrich`. A target takes part by cancelling `lm-dragenter`
 * and `lm-dragover` and setting a drop action the source supports (the file browser offers
 * `move`; nothing is moved: the browser ignores the result).
 *
 * A path is attached as a `file` item without its text (the server reads the file when the
 * message is sent, within the context budget). A folder is not attached: the model the drag
 * carries says which dragged item is a folder, and a note says what was left out. (Of a
 * multi-item drag only one model travels; a folder among the others is reported by the server
 * on the sent message's chip as "not a regular file".)
 */

import { h } from './dom';
import type { ContextItem } from './contextChips';

export const CONTENTS_MIME = 'application/x-jupyter-icontents';
export const CONTENTS_MIME_RICH = 'application/x-jupyter-icontentsrich';

/** How long the note about left-out folders stays. */
const NOTE_MS = 8000;
const ACTIVE_CLASS = 'pj-drop-active';

/** The part of a lumino drag event (Drag.Event) used here. */
interface LuminoDragEvent extends MouseEvent {
  mimeData: { hasData(mime: string): boolean; getData(mime: string): unknown };
  dropAction: string;
  proposedAction: string;
}

/** The dragged paths, split into files to attach and folders to leave out. */
export function draggedPaths(mimeData: LuminoDragEvent['mimeData']): { files: string[]; folders: string[] } {
  const raw = mimeData.getData(CONTENTS_MIME);
  const paths = (Array.isArray(raw) ? raw : [raw]).filter((p): p is string => typeof p === 'string' && p.length > 0);
  const rich = mimeData.hasData(CONTENTS_MIME_RICH) ? (mimeData.getData(CONTENTS_MIME_RICH) as { model?: { path?: unknown; type?: unknown } }) : null;
  const folder = rich?.model?.type === 'directory' ? rich.model.path : null;
  const isFolder = (path: string): boolean => path === folder || path.endsWith('/');
  return { files: paths.filter(p => !isFolder(p)), folders: paths.filter(isFolder) };
}

function fileItem(path: string): ContextItem {
  return { kind: 'file', path, label: path.split('/').pop() || path };
}

export interface FileDropOptions {
  /** The element that accepts drops (the whole chat). */
  target: HTMLElement;
  /** Where the note about left-out folders goes (first child). */
  noteHost: HTMLElement;
  /** Attach one item to the next message (ContextChips.add). */
  attach: (item: ContextItem) => void;
}

/** Accept file-browser drops on `target`; returns a function that stops. */
export function installFileDrop({ target, noteHost, attach }: FileDropOptions): () => void {
  const note = h('div', { className: 'pj-drop-note', role: 'status', hidden: true });
  noteHost.prepend(note);
  let noteTimer: ReturnType<typeof setTimeout> | null = null;
  const showNote = (text: string): void => {
    note.textContent = text;
    note.hidden = false;
    if (noteTimer) {
      clearTimeout(noteTimer);
    }
    noteTimer = setTimeout(() => {
      noteTimer = null;
      note.hidden = true;
    }, NOTE_MS);
  };

  const accepts = (event: Event): event is LuminoDragEvent => Boolean((event as LuminoDragEvent).mimeData?.hasData?.(CONTENTS_MIME));
  const take = (event: LuminoDragEvent): void => {
    event.preventDefault();
    event.stopPropagation();
    event.dropAction = event.proposedAction === 'none' ? 'copy' : event.proposedAction;
  };
  const onEnter = (event: Event): void => {
    if (accepts(event)) {
      take(event);
      target.classList.add(ACTIVE_CLASS);
    }
  };
  const onOver = (event: Event): void => {
    if (accepts(event)) {
      take(event);
    }
  };
  const onLeave = (event: Event): void => {
    // Sent when the pointer moves onto a child too: only leaving the chat ends the highlight.
    const related = (event as MouseEvent).relatedTarget;
    if (!(related instanceof Node && target.contains(related))) {
      target.classList.remove(ACTIVE_CLASS);
    }
  };
  const onDrop = (event: Event): void => {
    target.classList.remove(ACTIVE_CLASS);
    if (!accepts(event)) {
      return;
    }
    take(event);
    const { files, folders } = draggedPaths(event.mimeData);
    files.forEach(path => attach(fileItem(path)));
    if (folders.length) {
      const names = folders.map(p => `${p.replace(/\/$/, '').split('/').pop()}/`).join(', ');
      showNote(`Folders are not attached (${names}): drop the files inside them instead.`);
    }
  };
  const events: [string, (event: Event) => void][] = [
    ['lm-dragenter', onEnter],
    ['lm-dragover', onOver],
    ['lm-dragleave', onLeave],
    ['lm-drop', onDrop]
  ];
  events.forEach(([type, fn]) => target.addEventListener(type, fn));
  return () => {
    events.forEach(([type, fn]) => target.removeEventListener(type, fn));
    if (noteTimer) {
      clearTimeout(noteTimer);
    }
    target.classList.remove(ACTIVE_CLASS);
    note.remove();
  };
}
