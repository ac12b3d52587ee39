/**
 * The sidebar's model line: the shared ModelBar (renderer/modelBar.ts) over REST, with the
 * Settings button (keys and base URLs, rules), placed under the chat header of a ChatView.
 */

import { settingsIcon } from '@jupyterlab/ui-components';

import { PolarisClient } from '../api';
import { ChatView } from '../renderer/chatView';
import { ModelBar, ModelList, ModelSource, Rules } from '../renderer/modelBar';
import { Conversation } from '../renderer/types';
import { iconButton } from './chatPanel';
import { openSettings } from './settingsDialog';

/** GET /models, PATCH /conversations/{id}, GET /rules. */
export function restModelSource(client: PolarisClient): ModelSource {
  return {
    listModels: refresh => client.request<ModelList>('GET', 'models', undefined, refresh ? { refresh: 'true' } : {}),
    setModel: (conversationId, provider, model) =>
      client.request<Conversation>('PATCH', `conversations/${encodeURIComponent(conversationId)}`, { provider, model }),
    rules: () => client.request<Rules>('GET', 'rules')
  };
}

export interface SidebarModelBarOptions {
  ensureConversation: () => Promise<Conversation | null>;
  onChanged: (conversation: Conversation) => void;
  onError: (text: string) => void;
}

/** A ModelBar for `view`, mounted right under its header, with the Settings button. */
export function sidebarModelBar(client: PolarisClient, view: ChatView, options: SidebarModelBarOptions): ModelBar {
  const gear = iconButton(settingsIcon, 'pj-open-settings', 'Polaris settings');
  const bar = new ModelBar({
    source: restModelSource(client),
    extra: [gear],
    onEffective: (provider, model) => view.setStatus({ provider, model }),
    ...options
  });
  gear.addEventListener('click', () => void openSettings(client, () => void bar.refresh(true)));
  const header = view.node.querySelector('.pj-chat-header');
  if (header) {
    header.after(bar.node);
  } else {
    view.node.prepend(bar.node);
  }
  bar.watch(view);
  return bar;
}
