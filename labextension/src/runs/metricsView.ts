/**
 * Metrics: runs and success rate over time, duration p50/p95 per task,
 * retries per task, and a per-task table (from GET /metrics).
 *
 * The charts are drawn at the view's pixel width and redrawn when it changes
 * (a ResizeObserver), so their text keeps one size in the sidebar and in a tab.
 */

import { Metrics, PolarisClient, TaskMetrics } from '../api';
import { errorText } from '../renderer/chatView';
import { clear, formatDuration, h } from '../renderer/dom';
import { formatCost } from '../renderer/modelBar';
import { DEFAULT_CHART_WIDTH_PX, horizontalBars, runsOverTimeChart, SeriesPoint } from './charts';

/** Bucket start as a short local time; accepts ISO strings and epoch seconds (or ms). */
function bucketLabel(bucket: string | number): string {
  const date = typeof bucket === 'number' ? new Date(bucket < 1e12 ? bucket * 1000 : bucket) : new Date(bucket);
  if (isNaN(date.getTime())) {
    return String(bucket);
  }
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Tokens and estimated cost the task's runs reported (output.usage); unknown is "—", never 0. */
function usageCells(usage: TaskMetrics['usage']): HTMLElement[] {
  if (!usage) {
    return [h('td', { title: 'No run of this task reported model usage' }, '—'), h('td', null, '—')];
  }
  const tokens = usage.promptTokens + usage.completionTokens;
  const runs = `${usage.runs} run${usage.runs === 1 ? '' : 's'}`;
  const unpriced = usage.unpricedRuns ? `; ${usage.unpricedRuns} without a known price` : '';
  const cost = usage.costUsd === null ? '—' : `${formatCost(usage.costUsd)}${usage.unpricedRuns ? ' + ?' : ''}`;
  return [
    h('td', { title: `${usage.promptTokens.toLocaleString()} in, ${usage.completionTokens.toLocaleString()} out (${runs})` }, tokens.toLocaleString()),
    h('td', { title: `Estimated from the price table (PolarisConfig.prices)${unpriced}` }, cost)
  ];
}

export class MetricsView {
  readonly node: HTMLElement;
  private bodyEl: HTMLElement;
  private errorEl: HTMLElement;
  private loading = false;
  private pending = false;
  private lastLoadMs = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** The metrics drawn last (redrawn as they are when the width changes). */
  private shown: Metrics | null = null;
  /** The chart width the current drawing used, in CSS pixels. */
  private drawnWidthPx = 0;
  private resizeFrame = 0;
  private observer: ResizeObserver | null = null;

  constructor(private client: PolarisClient) {
    this.errorEl = h('div', { className: 'pj-banner', role: 'alert', hidden: true });
    this.bodyEl = h('div', { className: 'pj-metrics-body' }, h('div', { className: 'pj-muted' }, 'Loading…'));
    this.node = h('div', { className: 'pj-metrics' }, this.errorEl, this.bodyEl);
    if (typeof ResizeObserver === 'function') {
      this.observer = new ResizeObserver(() => this.onResize());
      this.observer.observe(this.bodyEl);
    }
  }

  async load(): Promise<void> {
    if (this.loading) {
      this.pending = true;
      return;
    }
    this.loading = true;
    this.lastLoadMs = Date.now();
    try {
      const metrics = await this.client.metrics();
      this.errorEl.hidden = true;
      this.shown = metrics;
      this.render(metrics);
    } catch (error) {
      this.errorEl.textContent = `Cannot load metrics: ${errorText(error)}`;
      this.errorEl.hidden = false;
      this.shown = null;
      clear(this.bodyEl);
    } finally {
      this.loading = false;
      if (this.pending) {
        this.pending = false;
        this.scheduleLoad();
      }
    }
  }

  /** Reload at most every 3 s while runs change. */
  scheduleLoad(): void {
    if (this.timer) {
      return;
    }
    const waitMs = Math.max(0, 3000 - (Date.now() - this.lastLoadMs));
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.load();
    }, waitMs);
  }

  dispose(): void {
    if (this.timer) {
      clearTimeout(this.timer);
    }
    if (this.resizeFrame) {
      cancelAnimationFrame(this.resizeFrame);
    }
    this.observer?.disconnect();
    this.node.remove();
  }

  /** The width the charts get: the body's content box (0 while the view is hidden). */
  private contentWidthPx(): number {
    const style = getComputedStyle(this.bodyEl);
    const padding = (parseFloat(style.paddingLeft) || 0) + (parseFloat(style.paddingRight) || 0);
    return Math.floor(this.bodyEl.clientWidth - padding);
  }

  /** Redraw at the new width, once per frame, only when the width really changed. */
  private onResize(): void {
    if (this.resizeFrame || !this.shown) {
      return;
    }
    this.resizeFrame = requestAnimationFrame(() => {
      this.resizeFrame = 0;
      const width = this.contentWidthPx();
      if (this.shown && width > 0 && width !== this.drawnWidthPx) {
        this.render(this.shown);
      }
    });
  }

  private render(metrics: Metrics): void {
    const measured = this.contentWidthPx();
    this.drawnWidthPx = measured > 0 ? measured : 0;
    const widthPx = measured > 0 ? measured : DEFAULT_CHART_WIDTH_PX;
    const series: SeriesPoint[] = (metrics.series ?? []).map(b => {
      const finished = b.completed + b.failed;
      return {
        label: bucketLabel(b.bucket),
        completed: b.completed,
        failed: b.failed,
        other: Math.max(0, b.runs - finished),
        successRate: finished > 0 ? b.completed / finished : null
      };
    });
    const tasks = [...(metrics.tasks ?? [])].sort((a, b) => a.taskId.localeCompare(b.taskId));
    const durations = horizontalBars(
      tasks
        .filter(t => t.durationP50Ms !== null || t.durationP95Ms !== null)
        .map(t => ({
          label: t.taskId,
          values: [
            { value: t.durationP50Ms ?? 0, cls: 'pj-chart-p50', title: 'p50' },
            { value: t.durationP95Ms ?? 0, cls: 'pj-chart-p95', title: 'p95' }
          ]
        })),
      v => formatDuration(v),
      'Duration p50 and p95 per task',
      widthPx
    );
    const retries = horizontalBars(
      tasks.map(t => ({ label: t.taskId, values: [{ value: t.retries ?? 0, cls: 'pj-chart-retries', title: 'retries' }] })),
      v => String(Math.round(v)),
      'Retries per task',
      widthPx
    );

    const table = h(
      'table',
      { className: 'pj-table pj-metrics-table' },
      h('thead', null, h('tr', null, h('th', null, 'Task'), h('th', null, 'Runs'), h('th', null, 'Success'), h('th', null, 'p50'), h('th', null, 'p95'), h('th', null, 'Retries'), h('th', null, 'Tokens'), h('th', null, 'Cost (est.)')))
    );
    const body = h('tbody');
    for (const t of tasks) {
      const total = Object.values(t.counts ?? {}).reduce((a, b) => a + b, 0);
      body.appendChild(
        h(
          'tr',
          null,
          h('td', null, t.taskId),
          h('td', { title: Object.entries(t.counts ?? {}).map(([k, v]) => `${k}: ${v}`).join('\n') }, String(total)),
          h('td', null, t.successRate === null || t.successRate === undefined ? '—' : `${Math.round(t.successRate * 100)}%`),
          h('td', null, formatDuration(t.durationP50Ms)),
          h('td', null, formatDuration(t.durationP95Ms)),
          h('td', null, String(t.retries ?? 0)),
          ...usageCells(t.usage)
        )
      );
    }
    table.appendChild(body);

    const legend = (...items: [string, string][]): HTMLElement =>
      h('div', { className: 'pj-legend' }, ...items.map(([cls, label]) => h('span', null, h('span', { className: `pj-swatch ${cls}` }), label)));

    clear(this.bodyEl);
    this.bodyEl.append(
      h('div', { className: 'pj-section-title' }, 'Runs and success rate over time'),
      runsOverTimeChart(series, widthPx),
      legend(['pj-chart-completed', 'completed'], ['pj-chart-failed', 'failed'], ['pj-chart-other', 'other'], ['pj-chart-rate', 'success rate']),
      h('div', { className: 'pj-section-title' }, 'Duration per task'),
      durations,
      legend(['pj-chart-p50', 'p50'], ['pj-chart-p95', 'p95']),
      h('div', { className: 'pj-section-title' }, 'Retries per task'),
      retries,
      h('div', { className: 'pj-section-title' }, 'Tasks'),
      tasks.length ? h('div', { className: 'pj-table-scroll' }, table) : h('div', { className: 'pj-muted' }, 'No runs yet.')
    );
  }
}
