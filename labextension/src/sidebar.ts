/**
 * The left-sidebar "Polaris" panel: a Chat view and a Runs view.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { PolarisClient } from './api';
import { ChatPanel } from './chat/chatPanel';
import { h } from './renderer/dom';
import { RunsPanel } from './runs/runsPanel';

export type SidebarView = 'chat' | 'runs';

export class PolarisSidebar extends Widget {
  readonly chat: ChatPanel;
  readonly runs: RunsPanel;
  private view: SidebarView = 'chat';
  private buttons: Record<SidebarView, HTMLButtonElement>;
  private hosts: Record<SidebarView, HTMLElement>;
  private started = false;

  constructor(client: PolarisClient, streamWindowMs: number, onOpenDashboard?: () => void, onOpenTools?: () => void) {
    super();
    this.id = 'polaris-sidebar';
    this.addClass('pj-sidebar');
    this.title.caption = 'Polaris';
    this.chat = new ChatPanel(client, streamWindowMs);
    this.runs = new RunsPanel(client, onOpenDashboard);
    this.buttons = {
      chat: h('button', { className: 'pj-tab pj-tab-chat', type: 'button', role: 'tab' }, 'Chat') as HTMLButtonElement,
      runs: h('button', { className: 'pj-tab pj-tab-runs', type: 'button', role: 'tab' }, 'Runs') as HTMLButtonElement
    };
    this.hosts = {
      chat: h('div', { className: 'pj-view pj-view-chat', role: 'tabpanel' }, this.chat.node),
      runs: h('div', { className: 'pj-view pj-view-runs', role: 'tabpanel', hidden: true }, this.runs.node)
    };
    this.buttons.chat.addEventListener('click', () => this.showView('chat'));
    this.buttons.runs.addEventListener('click', () => this.showView('runs'));
    // Tools (settings/toolsView.ts) opens in the main area: a button, not a tab of the sidebar.
    const tools = onOpenTools
      ? h('button', { className: 'pj-tab pj-open-tools', type: 'button', title: 'Tools: built-in and MCP servers', onclick: () => onOpenTools() }, 'Tools')
      : null;
    this.node.append(
      h('div', { className: 'pj-tabs', role: 'tablist' }, h('span', { className: 'pj-brand' }, 'Polaris'), this.buttons.chat, this.buttons.runs, tools),
      this.hosts.chat,
      this.hosts.runs
    );
    this.updateTabs();
  }

  get currentView(): SidebarView {
    return this.view;
  }

  showView(view: SidebarView): void {
    this.view = view;
    this.hosts.chat.hidden = view !== 'chat';
    this.hosts.runs.hidden = view !== 'runs';
    this.updateTabs();
    this.runs.setActive(view === 'runs' && this.isVisible);
    if (view === 'chat') {
      this.chat.view.focus();
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.chat.dispose();
    this.runs.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (!this.started) {
      this.started = true;
      void this.chat.init();
    }
    this.runs.setActive(this.view === 'runs');
  }

  protected onBeforeHide(msg: Message): void {
    super.onBeforeHide(msg);
    this.runs.setActive(false);
  }

  private updateTabs(): void {
    for (const [view, button] of Object.entries(this.buttons)) {
      const selected = view === this.view;
      button.classList.toggle('pj-active', selected);
      button.setAttribute('aria-selected', String(selected));
    }
  }
}
