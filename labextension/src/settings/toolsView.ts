/**
 * The Tools list of the Polaris settings: every tool the model may be offered.
 * MCP servers (from the mcp.json files) with their status, the reason a server
 * failed and when it is restarted, and their tools; then the built-in tools by
 * group. Each tool says whether it asks before running (its access: read tools
 * never ask; edit and execute tools ask as the conversation's mode says).
 * "Reload" reads the mcp.json files again (the server never does it by itself).
 * While a server is connecting or waiting to restart, the list refreshes itself.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { PolarisClient } from '../api';
import type { components } from '../generated/openapi';
import { errorText } from '../renderer/chatView';
import { clear, h } from '../renderer/dom';

type Schemas = components['schemas'];
export type McpServers = Schemas['McpServers'];
export type McpServer = Schemas['McpServer'];
export type ToolInfo = Schemas['ToolInfo'];

/** How often the list refreshes while a server is connecting or failed (it may come back). */
const REFRESH_MS = 1500;

const ACCESS_LABEL: Record<ToolInfo['access'], string> = {
  read: 'read-only',
  edit: 'edits: asks in ask mode',
  execute: 'acts: asks in ask and auto-edit modes'
};

const STATUS_LABEL: Record<McpServer['status'], string> = {
  connecting: 'connecting…',
  ready: 'ready',
  failed: 'failed',
  disabled: 'disabled'
};

export class ToolsView extends Widget {
  private body: HTMLElement;
  private errorEl: HTMLElement;
  private reloadButton: HTMLButtonElement;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private loadSeq = 0;

  constructor(private client: PolarisClient) {
    super();
    this.id = 'polaris-tools';
    this.addClass('pj-tools-view');
    this.title.label = 'Polaris Tools';
    this.title.caption = 'Tools the Polaris assistant may use: built-in and MCP servers';
    this.title.closable = true;
    this.reloadButton = h(
      'button',
      { className: 'pj-button pj-mcp-reload', type: 'button', title: 'Read the mcp.json files again and connect what changed' },
      'Reload MCP config'
    ) as HTMLButtonElement;
    this.reloadButton.addEventListener('click', () => void this.reload());
    this.errorEl = h('div', { className: 'pj-banner pj-tools-error', role: 'alert', hidden: true });
    this.body = h('div', { className: 'pj-tools-body' });
    this.node.append(
      h('div', { className: 'pj-toolbar pj-tools-header' }, h('h2', { className: 'pj-tools-title' }, 'Tools'), this.reloadButton),
      this.errorEl,
      this.body
    );
  }

  /** Fetch servers and tools and draw them; schedules the next refresh while something may change. */
  async load(): Promise<void> {
    const seq = ++this.loadSeq;
    try {
      const [servers, tools] = await Promise.all([
        this.client.request<McpServers>('GET', 'mcp'),
        this.client.request<{ tools: ToolInfo[] }>('GET', 'tools')
      ]);
      if (seq !== this.loadSeq || this.isDisposed) {
        return;
      }
      this.errorEl.hidden = true;
      this.render(servers, tools.tools ?? []);
      this.scheduleRefresh(servers.servers.some(s => s.status === 'connecting' || s.status === 'failed'));
    } catch (error) {
      if (seq !== this.loadSeq || this.isDisposed) {
        return;
      }
      this.errorEl.textContent = `Cannot load the tools: ${errorText(error)}`;
      this.errorEl.hidden = false;
      this.scheduleRefresh(true);
    }
  }

  dispose(): void {
    this.stopRefresh();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    void this.load();
  }

  protected onBeforeDetach(msg: Message): void {
    this.stopRefresh();
    super.onBeforeDetach(msg);
  }

  private async reload(): Promise<void> {
    this.reloadButton.disabled = true;
    try {
      await this.client.request<McpServers>('POST', 'mcp/reload');
      await this.load();
    } catch (error) {
      this.errorEl.textContent = `Cannot reload the MCP config: ${errorText(error)}`;
      this.errorEl.hidden = false;
    } finally {
      this.reloadButton.disabled = false;
    }
  }

  private scheduleRefresh(wanted: boolean): void {
    this.stopRefresh();
    if (wanted && this.isAttached) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.load();
      }, REFRESH_MS);
    }
  }

  private stopRefresh(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private render(servers: McpServers, tools: ToolInfo[]): void {
    clear(this.body);
    this.body.append(this.mcpSection(servers, tools), this.builtinSection(tools.filter(t => t.server === null)));
  }

  private mcpSection(config: McpServers, tools: ToolInfo[]): HTMLElement {
    const section = h('section', { className: 'pj-tools-section pj-mcp-section' }, h('h3', null, 'MCP servers'));
    const paths = config.configPaths ?? [];
    section.append(
      h(
        'p',
        { className: 'pj-muted pj-mcp-paths' },
        'Configured in ',
        ...paths.flatMap((p, i) => [i ? ' and ' : '', h('code', null, p)]),
        ' ({"mcpServers": {...}}; the workspace file wins by name).'
      )
    );
    for (const problem of config.problems ?? []) {
      section.append(
        h(
          'div',
          { className: 'pj-tool-error pj-mcp-problem', role: 'alert' },
          h('code', null, problem.path),
          problem.server ? ` — server ${problem.server}: ` : ': ',
          problem.error
        )
      );
    }
    if (!config.servers.length) {
      section.append(h('p', { className: 'pj-empty-row pj-mcp-none' }, 'No MCP servers are configured.'));
    }
    const access = new Map(tools.map(t => [t.name, t.access]));
    for (const server of config.servers) {
      section.append(this.serverCard(server, access));
    }
    return section;
  }

  private serverCard(server: McpServer, access: Map<string, ToolInfo['access']>): HTMLElement {
    const status = h(
      'span',
      { className: `pj-badge pj-mcp-status pj-mcp-status-${server.status}`, title: server.serverInfo ?? '' },
      STATUS_LABEL[server.status] ?? server.status
    );
    const card = h(
      'div',
      { className: 'pj-mcp-server', 'data-server': server.name, 'data-status': server.status },
      h(
        'div',
        { className: 'pj-mcp-server-head' },
        h('strong', { className: 'pj-mcp-name' }, server.name),
        status,
        h('span', { className: 'pj-muted pj-mcp-target', title: server.source }, server.target ? `${server.transport}: ${server.target}` : server.transport)
      )
    );
    if (server.error) {
      const retry = server.retryAt ? ` — retrying at ${new Date(server.retryAt * 1000).toLocaleTimeString()}` : '';
      card.append(h('div', { className: 'pj-tool-error pj-mcp-error' }, server.error, retry));
    }
    if (server.tools.length) {
      card.append(
        h(
          'ul',
          { className: 'pj-tool-list pj-mcp-tools' },
          ...server.tools.map(tool =>
            toolRow(tool.name, tool.description, access.get(tool.name) ?? (tool.readOnly ? 'read' : 'execute'))
          )
        )
      );
    } else if (server.status === 'ready') {
      card.append(h('p', { className: 'pj-muted' }, 'This server offers no tools.'));
    }
    return card;
  }

  private builtinSection(tools: ToolInfo[]): HTMLElement {
    const section = h('section', { className: 'pj-tools-section pj-builtin-section' }, h('h3', null, 'Built-in tools'));
    const groups = new Map<string, ToolInfo[]>();
    for (const tool of tools) {
      groups.set(tool.group, [...(groups.get(tool.group) ?? []), tool]);
    }
    for (const [group, members] of [...groups.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      section.append(
        h('h4', { className: 'pj-tool-group' }, group),
        h('ul', { className: 'pj-tool-list' }, ...members.map(t => toolRow(t.name, t.description, t.access)))
      );
    }
    return section;
  }
}

function toolRow(name: string, description: string, access: ToolInfo['access']): HTMLElement {
  const firstLine = description.split('\n')[0];
  return h(
    'li',
    { className: 'pj-tool-row', 'data-tool': name, 'data-access': access },
    h('code', { className: 'pj-tool-name' }, name),
    h('span', { className: `pj-tool-access pj-tool-access-${access}` }, ACCESS_LABEL[access] ?? access),
    h('span', { className: 'pj-muted pj-tool-description', title: description }, firstLine)
  );
}
