/**
 * The sidebar's Runs view: the run history table (filters by status and
 * task, live over the event stream), a run detail, metrics and schedules.
 */

import { launchIcon, refreshIcon } from '@jupyterlab/ui-components';

import { PolarisClient, Run } from '../api';
import { iconButton } from '../chat/chatPanel';
import { EventStream, StreamState } from '../eventStream';
import { errorText } from '../renderer/chatView';
import { clear, formatDuration, formatTime, h } from '../renderer/dom';
import { PolarisEvent } from '../renderer/types';
import { HealthBanner } from './healthBanner';
import { MetricsView } from './metricsView';
import { SchedulesView } from './schedulesView';
import { RunDetailView } from './runDetail';
import { RUN_STATUSES, statusClass, statusLabel } from './status';

type Tab = 'history' | 'metrics' | 'schedules';

const PAGE_SIZE = 50;

export class RunsPanel {
  readonly node: HTMLElement;
  private runs: Run[] = [];
  private nextCursor: string | null = null;
  private knownTasks = new Set<string>();
  private stream: EventStream | null = null;
  private detail: RunDetailView | null = null;
  private metrics: MetricsView;
  private schedules: SchedulesView;
  private health: HealthBanner;
  private tab: Tab = 'history';
  private active = false;
  private reloadTimer: ReturnType<typeof setTimeout> | null = null;
  private lastReloadMs = 0;
  private loadSeq = 0;

  private statusFilter: HTMLSelectElement;
  private taskFilter: HTMLSelectElement;
  private tagFilter: HTMLInputElement;
  private tagTimer: ReturnType<typeof setTimeout> | null = null;
  private tableBody: HTMLElement;
  private historyEl: HTMLElement;
  private contentEl: HTMLElement;
  private errorEl: HTMLElement;
  private moreButton: HTMLButtonElement;
  private liveEl: HTMLElement;
  private tabButtons: Record<Tab, HTMLButtonElement>;

  /** `onPopOut`, when given, adds a button that opens the dashboard in a main-area tab. */
  constructor(
    private client: PolarisClient,
    onPopOut?: () => void
  ) {
    this.statusFilter = h('select', { className: 'pj-select pj-status-filter', 'aria-label': 'Filter by status' }, h('option', { value: '' }, 'All statuses'), ...RUN_STATUSES.map(s => h('option', { value: s }, statusLabel(s)))) as HTMLSelectElement;
    this.taskFilter = h('select', { className: 'pj-select pj-task-filter', 'aria-label': 'Filter by task' }, h('option', { value: '' }, 'All tasks')) as HTMLSelectElement;
    this.statusFilter.addEventListener('change', () => void this.reload());
    this.taskFilter.addEventListener('change', () => void this.reload());
    this.tagFilter = h('input', { className: 'pj-input pj-tag-filter', type: 'search', placeholder: 'Tag', 'aria-label': 'Filter by tag' }) as HTMLInputElement;
    this.tagFilter.addEventListener('input', () => {
      // One request once the user pauses typing, not one per key.
      if (this.tagTimer) {
        clearTimeout(this.tagTimer);
      }
      this.tagTimer = setTimeout(() => {
        this.tagTimer = null;
        void this.reload();
      }, 300);
    });
    const refresh = iconButton(refreshIcon, 'pj-refresh-runs', 'Refresh');
    refresh.addEventListener('click', () => {
      this.stream?.reconnectNow();
      void this.reload();
      void this.health.load();
      this.loadTabData();
    });
    this.liveEl = h('span', { className: 'pj-conn pj-conn-connecting', title: 'connecting' });
    let popOut: HTMLButtonElement | null = null;
    if (onPopOut) {
      popOut = iconButton(launchIcon, 'pj-open-dashboard', 'Open the runs dashboard in a tab');
      popOut.addEventListener('click', onPopOut);
    }

    this.tabButtons = {
      history: h('button', { className: 'pj-subtab pj-subtab-history', type: 'button' }, 'History') as HTMLButtonElement,
      metrics: h('button', { className: 'pj-subtab pj-subtab-metrics', type: 'button' }, 'Metrics') as HTMLButtonElement,
      schedules: h('button', { className: 'pj-subtab pj-subtab-schedules', type: 'button' }, 'Schedules') as HTMLButtonElement
    };
    this.tabButtons.history.addEventListener('click', () => this.showTab('history'));
    this.tabButtons.metrics.addEventListener('click', () => this.showTab('metrics'));
    this.tabButtons.schedules.addEventListener('click', () => this.showTab('schedules'));

    this.errorEl = h('div', { className: 'pj-banner', role: 'alert', hidden: true });
    this.tableBody = h('tbody');
    const table = h(
      'table',
      { className: 'pj-table pj-runs-table' },
      h('thead', null, h('tr', null, h('th', null, 'Task'), h('th', null, 'Status'), h('th', null, 'Started'), h('th', null, 'Duration'), h('th', { title: 'Attempts' }, 'Att.'), h('th', null, 'Tags'))),
      this.tableBody
    );
    this.moreButton = h('button', { className: 'pj-button pj-button-secondary pj-more', type: 'button', hidden: true }, 'Load more') as HTMLButtonElement;
    this.moreButton.addEventListener('click', () => void this.loadMore());
    this.historyEl = h(
      'div',
      { className: 'pj-runs-history' },
      h('div', { className: 'pj-toolbar pj-runs-filters' }, this.statusFilter, this.taskFilter, this.tagFilter),
      this.errorEl,
      h('div', { className: 'pj-table-scroll' }, table),
      this.moreButton
    );
    this.metrics = new MetricsView(client);
    this.schedules = new SchedulesView(client);
    this.health = new HealthBanner(client);
    this.contentEl = h('div', { className: 'pj-runs-content' }, this.historyEl);
    this.node = h(
      'div',
      { className: 'pj-runs-panel' },
      h('div', { className: 'pj-toolbar pj-runs-tabs' }, h('span', { className: 'pj-subtabs' }, this.tabButtons.history, this.tabButtons.metrics, this.tabButtons.schedules), h('span', { className: 'pj-runs-actions' }, this.liveEl, refresh, popOut)),
      this.health.node,
      this.contentEl
    );
    this.updateTabs();
  }

  /** Called when the Runs view becomes visible or hidden: the live stream runs only while shown. */
  setActive(active: boolean): void {
    if (active === this.active) {
      return;
    }
    this.active = active;
    if (active) {
      void this.loadTasks();
      void this.health.load();
      void this.reload();
      this.loadTabData();
      this.stream = new EventStream({
        client: this.client,
        onEvent: event => this.onEvent(event),
        onState: (state, detail) => this.setLive(state, detail),
        onResync: () => {
          void this.reload();
          void this.detail?.load();
        }
      });
    } else {
      this.stream?.dispose();
      this.stream = null;
    }
  }

  showTab(tab: Tab): void {
    this.tab = tab;
    this.closeDetail();
    clear(this.contentEl);
    this.contentEl.appendChild(tab === 'history' ? this.historyEl : tab === 'metrics' ? this.metrics.node : this.schedules.node);
    this.loadTabData();
    this.updateTabs();
  }

  /** Fresh data for the metrics or schedules tab when it is the one shown (history has reload()). */
  private loadTabData(): void {
    if (this.tab === 'metrics') {
      void this.metrics.load();
    } else if (this.tab === 'schedules') {
      void this.schedules.load();
    }
  }

  /** Open the detail of one run (also used by the generate command). */
  openRun(runId: string): void {
    this.closeDetail();
    this.detail = new RunDetailView(this.client, runId, {
      onBack: () => this.showTab(this.tab),
      onOpenRun: id => this.openRun(id)
    });
    clear(this.contentEl);
    this.contentEl.appendChild(this.detail.node);
    void this.detail.load();
  }

  dispose(): void {
    this.setActive(false);
    this.closeDetail();
    this.metrics.dispose();
    this.schedules.dispose();
    this.health.dispose();
    if (this.tagTimer) {
      clearTimeout(this.tagTimer);
    }
    if (this.reloadTimer) {
      clearTimeout(this.reloadTimer);
    }
  }

  // ---- internals ------------------------------------------------------------

  private closeDetail(): void {
    this.detail?.dispose();
    this.detail = null;
  }

  private updateTabs(): void {
    for (const [tab, button] of Object.entries(this.tabButtons)) {
      button.classList.toggle('pj-active', tab === this.tab);
      button.setAttribute('aria-pressed', String(tab === this.tab));
    }
  }

  private setLive(state: StreamState, detail: string): void {
    this.liveEl.className = `pj-conn pj-conn-${state}`;
    this.liveEl.title = state === 'connected' ? 'live updates on' : detail;
  }

  private onEvent(event: PolarisEvent): void {
    this.detail?.applyEvent(event);
    if (!event.type.startsWith('run.')) {
      return;
    }
    if (event.type === 'run.status' && event.runId) {
      const run = this.runs.find(r => r.id === event.runId);
      if (run) {
        run.status = event.data?.status ?? run.status;
        if (typeof event.data?.attempt === 'number') {
          run.attemptCount = Math.max(run.attemptCount ?? 0, event.data.attempt);
        }
        this.renderRows();
      }
      if (event.data?.taskId) {
        this.addTask(String(event.data.taskId));
      }
      this.scheduleReload();
      if (this.tab === 'metrics') {
        this.metrics.scheduleLoad();
      } else if (this.tab === 'schedules' && event.data?.status === 'QUEUED') {
        this.schedules.scheduleLoad(); // a schedule may have fired: its last and next run moved
      }
    }
  }

  /** Reload the first page soon (new runs, durations), at most once a second. */
  private scheduleReload(): void {
    if (this.reloadTimer) {
      return;
    }
    const waitMs = Math.max(300, 1000 - (Date.now() - this.lastReloadMs));
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      void this.reload();
    }, waitMs);
  }

  private async loadTasks(): Promise<void> {
    try {
      const result = await this.client.listTasks();
      for (const task of result.tasks ?? []) {
        this.addTask(task.id);
      }
    } catch {
      // Tasks also come from the runs themselves; the runs error is shown below.
    }
  }

  private addTask(taskId: string): void {
    if (this.knownTasks.has(taskId)) {
      return;
    }
    this.knownTasks.add(taskId);
    const current = this.taskFilter.value;
    const names = [...this.knownTasks].sort();
    clear(this.taskFilter);
    this.taskFilter.append(h('option', { value: '' }, 'All tasks'), ...names.map(n => h('option', { value: n }, n)));
    this.taskFilter.value = current;
  }

  private filters(): { status?: string; task?: string; tag?: string } {
    return {
      status: this.statusFilter.value || undefined,
      task: this.taskFilter.value || undefined,
      tag: this.tagFilter.value.trim() || undefined
    };
  }

  async reload(): Promise<void> {
    const seq = ++this.loadSeq;
    this.lastReloadMs = Date.now();
    try {
      const result = await this.client.listRuns({ ...this.filters(), limit: PAGE_SIZE });
      if (seq !== this.loadSeq) {
        return;
      }
      this.runs = result.data ?? [];
      this.nextCursor = result.nextCursor ?? null;
      this.runs.forEach(r => this.addTask(r.taskId));
      this.errorEl.hidden = true;
    } catch (error) {
      if (seq !== this.loadSeq) {
        return;
      }
      this.errorEl.textContent = `Cannot load runs: ${errorText(error)}`;
      this.errorEl.hidden = false;
    }
    this.renderRows();
  }

  private async loadMore(): Promise<void> {
    if (!this.nextCursor) {
      return;
    }
    try {
      const result = await this.client.listRuns({ ...this.filters(), limit: PAGE_SIZE, cursor: this.nextCursor });
      const known = new Set(this.runs.map(r => r.id));
      this.runs.push(...(result.data ?? []).filter(r => !known.has(r.id)));
      this.nextCursor = result.nextCursor ?? null;
      this.renderRows();
    } catch (error) {
      this.errorEl.textContent = `Cannot load more runs: ${errorText(error)}`;
      this.errorEl.hidden = false;
    }
  }

  private renderRows(): void {
    clear(this.tableBody);
    for (const run of this.runs) {
      let duration = formatDuration(run.durationMs);
      if (run.durationMs === null && run.startedAt && !run.finishedAt) {
        duration = `${formatDuration(Date.now() - new Date(run.startedAt).getTime())}…`;
      }
      const tr = h(
        'tr',
        { className: 'pj-run-row', 'data-run-id': run.id, tabindex: 0, title: run.waitingReason ? `${run.id}: ${run.waitingReason}` : run.id },
        h('td', { className: 'pj-run-task' }, run.taskId),
        h('td', null, h('span', { className: statusClass(run.status) }, statusLabel(run.status))),
        h('td', null, formatTime(run.startedAt ?? run.createdAt)),
        h('td', null, duration),
        h('td', null, String(run.attemptCount ?? 0)),
        h('td', null, ...(run.tags ?? []).map(t => h('span', { className: 'pj-tag' }, t)))
      );
      tr.addEventListener('click', () => this.openRun(run.id));
      tr.addEventListener('keydown', event => {
        if (event.key === 'Enter') {
          this.openRun(run.id);
        }
      });
      this.tableBody.appendChild(tr);
    }
    if (!this.runs.length && this.errorEl.hidden) {
      this.tableBody.appendChild(h('tr', null, h('td', { colspan: 6, className: 'pj-muted pj-empty-row' }, 'No runs match these filters yet.')));
    }
    this.moreButton.hidden = !this.nextCursor;
  }
}
