/**
 * Open documents follow the agent (issue 13 items 7 and 9): when a tool call of any chat writes
 * a file (a finished call with a diff) that is open in JupyterLab, the editor reloads it if it has
 * no unsaved changes; with unsaved changes a notice offers Reload / Keep mine. Tool cards' paths
 * open the file (`docmanager:open`). An applied cell proposal (`proposal.updated`) is followed the
 * same way, whichever view applied it. One event stream of its own, all conversations.
 */

import type { ILabShell, JupyterFrontEnd } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import type { Widget } from '@lumino/widgets';

import { PolarisClient } from '../api';
import { EventStream } from '../eventStream';
import { setPathOpener } from '../renderer/paths';

interface DocumentLike extends Widget {
  context: { path: string; model: { dirty: boolean }; revert(): Promise<void> };
}

function asDocument(widget: Widget): DocumentLike | null {
  const context = (widget as any)?.context;
  return typeof context?.path === 'string' && context.model && typeof context.revert === 'function' ? (widget as DocumentLike) : null;
}

/** The open documents of `path` show its saved contents (asks first where edits are unsaved). */
export function followFileChange(labShell: ILabShell, path: string): void {
  for (const widget of labShell.widgets('main')) {
    const doc = asDocument(widget);
    if (!doc || doc.context.path !== path) {
      continue;
    }
    if (!doc.context.model.dirty) {
      void doc.context.revert();
      continue;
    }
    Notification.warning(`Polaris changed ${path}, which has unsaved changes here.`, {
      autoClose: false,
      actions: [
        { label: 'Reload', caption: 'Show the file as saved (your unsaved changes are lost)', callback: () => void doc.context.revert() },
        { label: 'Keep mine', caption: 'Keep what you see; saving overwrites the edit', callback: () => undefined }
      ]
    });
  }
}

/** Start following; returns a function that stops. */
export function installFollowEdits(app: JupyterFrontEnd, labShell: ILabShell, client: PolarisClient): () => void {
  setPathOpener(path => {
    void app.commands.execute('docmanager:open', { path });
  });
  const seen = new Set<string>();
  const stream = new EventStream({
    client,
    onEvent: event => {
      if (event.type === 'proposal.updated') {
        // An applied proposal wrote its cell, from whichever view applied it (the sidebar, a
        // notebook's ChatPanel through its kernel, another browser): the open notebook follows.
        const proposal = event.data?.proposal as { id?: string; status?: string; path?: string } | undefined;
        const key = `proposal:${proposal?.id}`;
        if (proposal?.status === 'applied' && typeof proposal.path === 'string' && !seen.has(key)) {
          seen.add(key);
          followFileChange(labShell, proposal.path);
        }
        return;
      }
      if (event.type !== 'toolcall.finished') {
        return;
      }
      const call = event.data?.toolCall as { id?: string; name?: string; diff?: string; arguments?: Record<string, unknown> } | undefined;
      const path = call?.arguments?.path;
      // A proposal (proposeCellEdit) writes nothing until applied: its Apply reloads (explainFix.ts).
      if (!call?.diff || call.name?.startsWith('propose') || typeof path !== 'string' || !call.id || seen.has(call.id)) {
        return;
      }
      seen.add(call.id); // a replayed event (reconnect) does not ask twice
      followFileChange(labShell, path);
    }
  });
  return () => {
    stream.dispose();
    setPathOpener(null);
  };
}
