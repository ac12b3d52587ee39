/**
 * Registers the Tools list (toolsView.ts): the command "Polaris: Tools" opens
 * it in the main area (one at a time, restored after a reload); the sidebar's
 * Tools button runs the same command.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, WidgetTracker } from '@jupyterlab/apputils';

import { PolarisClient } from '../api';
import { ToolsView } from './toolsView';

export const OPEN_TOOLS = 'polaris:open-tools';

export const toolsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'polaris-jupyter:tools',
  description: 'Polaris: the tools the assistant may use (built-in and MCP servers).',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null, restorer: ILayoutRestorer | null) => {
    const client = new PolarisClient(app.serviceManager.serverSettings);
    const tracker = new WidgetTracker<ToolsView>({ namespace: 'polaris-tools' });
    app.commands.addCommand(OPEN_TOOLS, {
      label: 'Polaris: Tools',
      caption: 'The tools the Polaris assistant may use: built-in ones and those of MCP servers, with their status',
      execute: () => {
        let view = tracker.currentWidget;
        if (!view || view.isDisposed) {
          view = new ToolsView(client);
          app.shell.add(view, 'main');
          void tracker.add(view);
        } else {
          void view.load();
        }
        app.shell.activateById(view.id);
        return view;
      }
    });
    palette?.addItem({ command: OPEN_TOOLS, category: 'Polaris' });
    if (restorer) {
      void restorer.restore(tracker, { command: OPEN_TOOLS, name: () => 'tools' });
    }
  }
};
