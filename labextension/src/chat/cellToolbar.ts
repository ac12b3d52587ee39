/**
 * `Explain error` and `Fix with Polaris` in the notebook cell toolbar (issue 13 item 5), next to
 * JupyterLab's own cell buttons, for the active code cell whose last run raised.
 *
 * Done the documented JupyterLab 4 way: two commands here, and the items naming them under
 * `jupyter.lab.toolbars` → `Cell` in schema/plugin.json, which @jupyterlab/cell-toolbar-extension
 * merges into the toolbar it puts on the active cell. Each command is visible only while the
 * active cell of the current notebook has an `error` output; the toolbar button follows the
 * command's visibility when told the command changed (`refresh`), which explainFix.ts does when a
 * cell's outputs or the active cell change. The actions are explainFix.ts's, so a click here is
 * the same turn as a click under the error output.
 */

import type { JupyterFrontEnd } from '@jupyterlab/application';
import { LabIcon } from '@jupyterlab/ui-components';

import type { Intent } from './explainFix';

export const EXPLAIN_ERROR_COMMAND = 'polaris:explain-cell-error';
export const FIX_ERROR_COMMAND = 'polaris:fix-cell-error';

const explainIcon = new LabIcon({
  name: 'polaris-jupyter:explain-error',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm7.1 9.6h1.8V12c0-.6.3-.9 1-1.4.8-.6 1.6-1.3 1.6-2.6 0-1.8-1.5-3-3.4-3-2 0-3.4 1.2-3.5 3.1h1.9c.1-.9.7-1.4 1.6-1.4.8 0 1.4.5 1.4 1.2 0 .6-.3.9-1 1.4-.9.6-1.4 1.2-1.4 2.4v.9zm.9 3.4a1.1 1.1 0 1 0 0-2.2 1.1 1.1 0 0 0 0 2.2z"/></svg>'
});

const fixIcon = new LabIcon({
  name: 'polaris-jupyter:fix-error',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M22.7 19l-9.1-9.1c.9-2.3.4-5-1.5-6.9-2-2-5-2.4-7.4-1.3L9 6 6 9 1.6 4.7C.4 7.1.9 10.1 2.9 12.1c1.9 1.9 4.6 2.4 6.9 1.5l9.1 9.1c.4.4 1 .4 1.4 0l2.3-2.3c.5-.4.5-1.1.1-1.4z"/></svg>'
});

/**
 * Register both commands. `failedActiveCell()` returns how to ask about the active cell of the
 * current notebook when that cell's last run raised, else null. `refresh` re-checks the commands'
 * visibility (the toolbar buttons show or hide at once); `dispose` removes the commands.
 */
export function registerCellToolbarCommands(
  commands: JupyterFrontEnd['commands'],
  failedActiveCell: () => ((intent: Intent) => void) | null
): { refresh: () => void; dispose: () => void } {
  const add = (id: string, label: string, icon: LabIcon, intent: Intent): { dispose(): void } =>
    commands.addCommand(id, {
      // No caption: the toolbar button's accessible name is its tooltip, which is then the label.
      label,
      icon,
      isVisible: () => failedActiveCell() !== null,
      isEnabled: () => failedActiveCell() !== null,
      execute: () => failedActiveCell()?.(intent)
    });
  const registered = [add(EXPLAIN_ERROR_COMMAND, 'Explain error', explainIcon, 'explain'), add(FIX_ERROR_COMMAND, 'Fix with Polaris', fixIcon, 'fix')];
  return {
    refresh: () => {
      commands.notifyCommandChanged(EXPLAIN_ERROR_COMMAND);
      commands.notifyCommandChanged(FIX_ERROR_COMMAND);
    },
    dispose: () => registered.forEach(command => command.dispose())
  };
}
