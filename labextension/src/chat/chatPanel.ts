/**
 * The sidebar's Chat view: a conversation bar (pick, new, rename, delete)
 * over the shared ChatView, fed by REST snapshots and the conversation's
 * event stream. The server names a new chat after its first message, so the
 * list is reloaded after a send and when an answer finishes.
 */

import { Dialog, InputDialog, showDialog } from '@jupyterlab/apputils';
import { addIcon, deleteIcon, editIcon, LabIcon } from '@jupyterlab/ui-components';

import { PolarisClient } from '../api';
import { EventStream } from '../eventStream';
import { ChatView, errorText, NEW_CHAT_TITLE } from '../renderer/chatView';
import { clear, h } from '../renderer/dom';
import { ModelBar } from '../renderer/modelBar';
import { PermissionMode, PermissionModeControl } from '../renderer/permissionMode';
import { ChatContext, Conversation } from '../renderer/types';
import { sidebarModelBar } from './modelHeader';

const STORAGE_KEY = 'polaris-jupyter:conversation';

/** A themed icon button (JupyterLab's own icons, so it matches the rest of the UI). */
export function iconButton(icon: LabIcon, className: string, label: string): HTMLButtonElement {
  const button = h('button', { className: `pj-icon-button ${className}`, type: 'button', title: label, 'aria-label': label }) as HTMLButtonElement;
  button.appendChild(icon.element({ tag: 'span', className: 'pj-icon', elementPosition: 'center', height: '16px', width: '16px' }));
  return button;
}

export class ChatPanel {
  readonly node: HTMLElement;
  readonly view: ChatView;
  private conversations: Conversation[] = [];
  private current: Conversation | null = null;
  private stream: EventStream | null = null;
  private picker: HTMLSelectElement;
  private renameButton: HTMLButtonElement;
  private deleteButton: HTMLButtonElement;
  private mode: PermissionModeControl;
  /** The model picker, rules and usage line under the header (modelHeader.ts). */
  private models: ModelBar;
  private loading: Promise<void> | null = null;
  private loadAgain = false;
  private disposed = false;

  constructor(private client: PolarisClient, streamWindowMs = 100) {
    this.picker = h('select', { className: 'pj-select pj-conversation-picker', 'aria-label': 'Chat', title: 'Chat' }) as HTMLSelectElement;
    const newButton = iconButton(addIcon, 'pj-new-conversation', NEW_CHAT_TITLE);
    this.renameButton = iconButton(editIcon, 'pj-rename-conversation', 'Rename chat');
    this.deleteButton = iconButton(deleteIcon, 'pj-delete-conversation', 'Delete chat');
    this.mode = new PermissionModeControl(
      mode => this.setMode(mode),
      error => this.view.showError(`Cannot change the permission mode: ${errorText(error)}`)
    );
    const bar = h('div', { className: 'pj-conversation-bar' }, this.picker, newButton, this.renameButton, this.deleteButton, this.mode.node);
    const host = h('div', { className: 'pj-chat-host' });
    this.node = h('div', { className: 'pj-chat-panel' }, host);

    this.view = new ChatView(
      host,
      {
        send: (text, context) => this.send(text, context),
        stop: messageId => this.client.cancelMessage(messageId).then(() => this.loadMessages()),
        retry: messageId => this.client.retryMessage(messageId).then(() => this.loadMessages()),
        revert: (runId, force) => this.client.revertRun(runId, force),
        decide: (approvalId, decision, scope) =>
          this.client.request('POST', `approvals/${encodeURIComponent(approvalId)}`, { decision, scope }),
        resync: () => {
          void this.loadMessages();
        }
      },
      {
        streamWindowMs,
        toolbar: bar,
        onReconnect: () => this.stream?.reconnectNow(),
        mentionFiles: query => this.client.request<{ paths: string[] }>('GET', 'files', undefined, { query, limit: 20 }).then(r => r.paths)
      }
    );

    this.models = sidebarModelBar(client, this.view, {
      ensureConversation: () => this.newConversation(),
      onChanged: updated => {
        this.conversations = this.conversations.map(c => (c.id === updated.id ? updated : c));
        this.current = this.current?.id === updated.id ? updated : this.current;
      },
      onError: text => this.view.showError(text)
    });
    this.picker.addEventListener('change', () => {
      const next = this.conversations.find(c => c.id === this.picker.value) ?? null;
      this.open(next);
    });
    newButton.addEventListener('click', () => void this.newConversation());
    this.renameButton.addEventListener('click', () => void this.rename());
    this.deleteButton.addEventListener('click', () => void this.remove());
    this.renderPicker();
  }

  /** Load conversations and the model status; open the last used conversation. */
  async init(): Promise<void> {
    await Promise.all([this.refreshStatus().then(() => this.models.refresh()), this.refreshConversations()]);
    if (this.disposed) {
      return;
    }
    if (this.current) {
      // The user sent a first message while this was loading: keep that conversation open.
      this.renderPicker();
      return;
    }
    const saved = localStorage.getItem(STORAGE_KEY);
    const initial = this.conversations.find(c => c.id === saved) ?? this.conversations[0] ?? null;
    this.open(initial);
  }

  setContext(context: ChatContext | null): void {
    this.view.setContext(context);
  }

  setStreamWindow(windowMs: number): void {
    this.view.setStreamWindow(windowMs);
  }

  async refreshStatus(): Promise<void> {
    try {
      const config = await this.client.getConfig();
      this.view.setStatus({ provider: config.active?.provider, model: config.active?.model });
    } catch (error) {
      this.view.setStatus({ text: 'model: unknown' });
      this.view.showError(errorText(error));
    }
  }

  /** Reload the list (titles the server gave); `quiet`: a failure keeps the list as it is. */
  async refreshConversations(quiet = false): Promise<void> {
    try {
      const result = await this.client.listConversations();
      const listed = result.data ?? [];
      // A conversation created while the list was in flight is not in it yet: keep it.
      const current = this.current;
      const fresh = current ? listed.find(c => c.id === current.id) : undefined;
      this.conversations = current && !fresh ? [current, ...listed] : listed;
      if (fresh && this.current?.id === fresh.id) {
        this.current = fresh;
        this.view.setConversation(fresh);
      }
      this.renderPicker();
    } catch (error) {
      if (!quiet) {
        this.view.showError(`Cannot load your chats: ${errorText(error)}`);
        this.view.setConnection('error', errorText(error));
      }
    }
  }

  async newConversation(title?: string): Promise<Conversation | null> {
    try {
      const conversation = await this.client.createConversation(title);
      this.conversations = [conversation, ...this.conversations.filter(c => c.id !== conversation.id)];
      this.open(conversation);
      this.view.focus();
      return conversation;
    } catch (error) {
      this.view.showError(`Cannot start a new chat: ${errorText(error)}`);
      return null;
    }
  }

  dispose(): void {
    this.disposed = true;
    this.stream?.dispose();
    this.stream = null;
    this.models.dispose();
    this.view.dispose();
  }

  // ---- internals ------------------------------------------------------------

  private open(conversation: Conversation | null): void {
    this.stream?.dispose();
    this.stream = null;
    this.current = conversation;
    this.view.setConversation(conversation);
    this.models.setConversation(conversation);
    this.mode.show(conversation);
    this.renderPicker();
    if (!conversation) {
      localStorage.removeItem(STORAGE_KEY);
      return;
    }
    localStorage.setItem(STORAGE_KEY, conversation.id);
    this.stream = new EventStream({
      client: this.client,
      filter: { conversation: conversation.id },
      onEvent: event => {
        this.view.applyEvent(event);
        if (event.type === 'message.status' && event.data?.final) {
          void this.refreshConversations(true); // a title given by the server (or another client)
        }
      },
      onState: (state, detail) => this.view.setConnection(state, detail),
      onResync: () => void this.loadMessages()
    });
    void this.loadMessages();
  }

  /** Load the current conversation's messages; coalesces concurrent calls. */
  private loadMessages(): Promise<void> {
    if (this.loading) {
      this.loadAgain = true;
      return this.loading;
    }
    const conversation = this.current;
    if (!conversation) {
      return Promise.resolve();
    }
    this.loading = (async () => {
      try {
        do {
          this.loadAgain = false;
          const result = await this.client.listMessages(conversation.id);
          if (this.current?.id === conversation.id) {
            this.view.setMessages(result.data ?? []);
          }
        } while (this.loadAgain && this.current?.id === conversation.id);
      } catch (error) {
        this.view.showError(`Cannot load messages: ${errorText(error)}`);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  private async send(text: string, context?: ChatContext): Promise<void> {
    let conversation = this.current;
    if (!conversation) {
      conversation = await this.client.createConversation(text.slice(0, 60));
      this.conversations = [conversation, ...this.conversations];
      this.open(conversation);
    }
    await this.client.sendMessage(conversation.id, text, context);
    // The first message names the conversation on the server: show the new title now.
    await Promise.all([this.loadMessages(), this.refreshConversations(true)]);
  }

  /**
   * Explain error / Fix with Polaris (chat/explainFix.ts): a new chat named `title` whose first
   * message carries the failed cell as context and the intent; a refusal is shown in the chat.
   */
  async sendIntent(text: string, context: ChatContext, intent: 'explain' | 'fix', title: string): Promise<void> {
    const conversation = await this.newConversation(title);
    if (!conversation) {
      return;
    }
    try {
      await this.client.request('POST', `conversations/${encodeURIComponent(conversation.id)}/messages`, { content: text, context, intent });
    } catch (error) {
      this.view.showError(`Could not send: ${errorText(error)}`);
    }
    await Promise.all([this.loadMessages(), this.refreshConversations(true)]);
  }

  /** Save the permission mode of the open conversation (a new one is started when none is open). */
  private async setMode(mode: PermissionMode): Promise<void> {
    const conversation = this.current ?? (await this.client.createConversation());
    const updated = await this.client.request<Conversation>('PATCH', `conversations/${encodeURIComponent(conversation.id)}`, {
      permissionMode: mode
    });
    this.conversations = [updated, ...this.conversations.filter(c => c.id !== updated.id)];
    if (this.current?.id === updated.id) {
      this.current = updated;
    } else {
      this.open(updated);
    }
    this.renderPicker();
  }

  private async rename(): Promise<void> {
    const conversation = this.current;
    if (!conversation) {
      return;
    }
    const result = await InputDialog.getText({ title: 'Rename chat', text: conversation.title, okLabel: 'Rename' });
    const title = result.value?.trim();
    if (!result.button.accept || !title) {
      return;
    }
    try {
      const updated = await this.client.renameConversation(conversation.id, title);
      this.conversations = this.conversations.map(c => (c.id === updated.id ? updated : c));
      if (this.current?.id === updated.id) {
        this.current = updated;
        this.view.setConversation(updated);
      }
      this.renderPicker();
    } catch (error) {
      this.view.showError(`Cannot rename: ${errorText(error)}`);
    }
  }

  private async remove(): Promise<void> {
    const conversation = this.current;
    if (!conversation) {
      return;
    }
    const result = await showDialog({
      title: 'Delete chat',
      body: `Delete "${conversation.title || conversation.id}" and all its messages?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!result.button.accept) {
      return;
    }
    try {
      await this.client.deleteConversation(conversation.id);
      this.conversations = this.conversations.filter(c => c.id !== conversation.id);
      this.open(this.conversations[0] ?? null);
    } catch (error) {
      this.view.showError(`Cannot delete: ${errorText(error)}`);
    }
  }

  private renderPicker(): void {
    clear(this.picker);
    if (!this.current) {
      this.picker.appendChild(h('option', { value: '' }, NEW_CHAT_TITLE));
    }
    for (const conversation of this.conversations) {
      this.picker.appendChild(h('option', { value: conversation.id }, conversation.title || 'Untitled'));
    }
    this.picker.value = this.current?.id ?? '';
    this.renameButton.disabled = !this.current;
    this.deleteButton.disabled = !this.current;
  }
}
