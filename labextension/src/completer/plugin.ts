/**
 * Registers the Polaris inline completion provider with JupyterLab's
 * completion manager (JupyterLab >= 4.1) and keeps it in step with the
 * settings of schema/completer.json. Accepting uses JupyterLab's own command
 * (Tab / Alt End); running it is what tells the server a suggestion was taken.
 */

import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { PolarisClient } from '../api';
import { DEFAULT_SETTINGS, ICompleterSettings, PolarisInlineProvider } from './provider';

const PLUGIN_ID = 'polaris-jupyter:completer';
const ACCEPT_COMMAND = 'inline-completer:accept';

function read(settings: ISettingRegistry.ISettings): ICompleterSettings {
  const get = <T>(key: keyof ICompleterSettings, fallback: T): T => (settings.get(key).composite as T | undefined) ?? fallback;
  const number = (key: keyof ICompleterSettings, fallback: number): number => {
    const value = Number(get(key, fallback));
    return Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  return {
    enabled: Boolean(get('enabled', DEFAULT_SETTINGS.enabled)),
    debounceMs: number('debounceMs', DEFAULT_SETTINGS.debounceMs),
    maxSuggestionChars: Math.max(1, number('maxSuggestionChars', DEFAULT_SETTINGS.maxSuggestionChars)),
    provider: String(get('provider', '')).trim(),
    model: String(get('model', '')).trim()
  };
}

export const completerPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Polaris: inline completions (ghost text) in notebooks and editors.',
  autoStart: true,
  requires: [ICompletionProviderManager],
  optional: [ISettingRegistry],
  activate: (app: JupyterFrontEnd, manager: ICompletionProviderManager, settingRegistry: ISettingRegistry | null) => {
    if (typeof manager.registerInlineProvider !== 'function') {
      console.warn('Polaris: this JupyterLab has no inline completer (4.1 or later is needed)');
      return;
    }
    const provider = new PolarisInlineProvider(new PolarisClient(app.serviceManager.serverSettings));
    manager.registerInlineProvider(provider);
    app.commands.commandExecuted.connect((_, args) => {
      if (args.id === ACCEPT_COMMAND) {
        provider.accepted();
      }
    });
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          provider.settings = read(settings);
          settings.changed.connect(() => {
            provider.settings = read(settings);
          });
        })
        .catch(error => console.warn('Polaris: cannot load the inline completion settings', error));
    }
  }
};
