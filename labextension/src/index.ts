/**
 * polaris-jupyter JupyterLab plugin: the Polaris sidebar (Chat + Runs),
 * command palette entries and settings.
 */

import { ILabShell, ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { answerMimePlugin } from './answerMime';
import { PolarisClient } from './api';
import { installExplainFix } from './chat/explainFix';
import { installFollowEdits } from './chat/followEdits';
import { installLabCodeActions } from './chat/labCodeActions';
import { completerPlugin } from './completer/plugin';
import { followLabContext } from './chat/labContext';
import { generateProject } from './generateDialog';
import { notebookJobPlugin, OPEN_RUN } from './notebookJob';
import { errorText } from './renderer/chatView';
import { setFolderRevealer } from './renderer/paths';
import { RunsDashboard } from './runs/dashboard';
import { OPEN_TOOLS, toolsPlugin } from './settings/toolsPlugin';
import { PolarisSidebar } from './sidebar';

const PLUGIN_ID = 'polaris-jupyter:plugin';

export namespace CommandIDs {
  export const openChat = 'polaris:open-chat';
  export const newConversation = 'polaris:new-conversation';
  export const generateProject = 'polaris:generate-project';
  export const openRuns = 'polaris:open-runs';
  export const openRunsDashboard = 'polaris:open-runs-dashboard';
}

export const polarisIcon = new LabIcon({
  name: 'polaris-jupyter:polaris',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M12 1.5l2.2 7.1 7.3 3.4-7.3 3.4L12 22.5l-2.2-7.1L2.5 12l7.3-3.4z"/>' +
    '<circle class="jp-icon-accent0" fill="#fff" cx="12" cy="12" r="1.6"/></svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Polaris: chat with an AI coding assistant and watch its background runs.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer, ISettingRegistry, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    labShell: ILabShell | null
  ) => {
    const client = new PolarisClient(app.serviceManager.serverSettings);
    const sidebar = new PolarisSidebar(
      client,
      100,
      () => void app.commands.execute(CommandIDs.openRunsDashboard),
      () => void app.commands.execute(OPEN_TOOLS)
    );
    sidebar.title.icon = polarisIcon;
    app.shell.add(sidebar, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(sidebar, 'polaris-sidebar');
    }

    const reveal = (view: 'chat' | 'runs'): void => {
      app.shell.activateById(sidebar.id);
      sidebar.showView(view);
    };

    app.commands.addCommand(CommandIDs.openChat, {
      label: 'Polaris: Open Chat',
      caption: 'Open the Polaris chat in the left sidebar',
      icon: polarisIcon,
      execute: () => reveal('chat')
    });
    app.commands.addCommand(CommandIDs.newConversation, {
      label: 'Polaris: New Chat',
      execute: async () => {
        reveal('chat');
        await sidebar.chat.newConversation();
      }
    });
    app.commands.addCommand(CommandIDs.openRuns, {
      label: 'Polaris: Open Runs',
      caption: 'Open the Polaris runs dashboard',
      execute: () => reveal('runs')
    });
    // For other plugins (notebook jobs): the runs sidebar on one run, or on a tab.
    app.commands.addCommand(OPEN_RUN, {
      label: 'Polaris: Open a Run',
      execute: args => {
        reveal('runs');
        if (typeof args.runId === 'string') {
          sidebar.runs.openRun(args.runId);
        } else if (args.tab === 'history' || args.tab === 'metrics' || args.tab === 'schedules') {
          sidebar.runs.showTab(args.tab);
        }
      }
    });
    // One dashboard tab at a time; the tracker restores it after a reload.
    const dashboards = new WidgetTracker<RunsDashboard>({ namespace: 'polaris-runs-dashboard' });
    app.commands.addCommand(CommandIDs.openRunsDashboard, {
      label: 'Polaris: Open Runs Dashboard in a Tab',
      caption: 'Open the Polaris runs dashboard in the main area, with room for every column',
      icon: polarisIcon,
      execute: () => {
        let dashboard = dashboards.currentWidget;
        if (!dashboard || dashboard.isDisposed) {
          dashboard = new RunsDashboard(client);
          dashboard.title.icon = polarisIcon;
          app.shell.add(dashboard, 'main');
          void dashboards.add(dashboard);
        }
        app.shell.activateById(dashboard.id);
        return dashboard;
      }
    });
    if (restorer) {
      void restorer.restore(dashboards, { command: CommandIDs.openRunsDashboard, name: () => 'dashboard' });
    }
    app.commands.addCommand(CommandIDs.generateProject, {
      label: 'Polaris: Generate Project…',
      execute: async () => {
        try {
          const runId = await generateProject(client);
          if (runId) {
            reveal('runs');
            sidebar.runs.openRun(runId);
          }
        } catch (error) {
          Notification.error(`Polaris: could not start the generation: ${errorText(error)}`, { autoClose: 8000 });
        }
      }
    });
    if (palette) {
      const commands = [CommandIDs.openChat, CommandIDs.newConversation, CommandIDs.generateProject, CommandIDs.openRuns, CommandIDs.openRunsDashboard];
      for (const command of commands) {
        palette.addItem({ command, category: 'Polaris' });
      }
    }

    if (labShell) {
      followLabContext(labShell, sidebar.chat);
      installLabCodeActions(app, labShell);
      installExplainFix(app, labShell, client, sidebar.chat, sidebar.id);
      installFollowEdits(app, labShell, client);
      // A generated project's folder: `Show in file browser` (renderer/progress.ts).
      setFolderRevealer(folder => void app.commands.execute('filebrowser:go-to-path', { path: folder }));
    }

    if (settingRegistry) {
      let appliedModel = '';
      const apply = (settings: ISettingRegistry.ISettings): void => {
        const windowMs = Number(settings.get('streamWindowMs').composite ?? 100);
        sidebar.chat.setStreamWindow(Number.isFinite(windowMs) ? windowMs : 100);
        const model = String(settings.get('defaultModel').composite ?? '').trim();
        if (model && model !== appliedModel) {
          appliedModel = model;
          client
            .putConfig({ model })
            .then(() => sidebar.chat.refreshStatus())
            .catch(error => console.warn(`Polaris: could not select model ${model}: ${errorText(error)}`));
        }
      };
      app.restored
        .then(() => settingRegistry.load(PLUGIN_ID))
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(error => console.warn(`Polaris: cannot load settings: ${errorText(error)}`));
    }
  }
};

export default [plugin, answerMimePlugin, notebookJobPlugin, toolsPlugin, completerPlugin];
