/**
 * Run detail: payload, output or error, attempts, logs, events and metadata
 * of one run, kept live from the event stream, with Cancel and Replay.
 */

import { PolarisClient, RunDetail } from '../api';
import { errorText } from '../renderer/chatView';
import { clear, formatDuration, formatTime, h, prettyJson, shortJson } from '../renderer/dom';
import { ProgressView } from '../renderer/progress';
import { PolarisEvent } from '../renderer/types';
import { isNotebookRun, notebookProgress } from './notebookProgress';
import { isFinalRun, statusClass, statusLabel } from './status';

export interface RunDetailOptions {
  onBack: () => void;
  onOpenRun: (runId: string) => void;
}

export class RunDetailView {
  readonly node: HTMLElement;
  private run: RunDetail | null = null;
  private events: PolarisEvent[] = [];
  private seen = new Set<number>();
  private progress: ProgressView | null = null;
  private bodyEl: HTMLElement;
  private errorEl: HTMLElement;
  private reloadTimer: ReturnType<typeof setTimeout> | null = null;
  private reloadAgain = false;
  private renderTimer: ReturnType<typeof setTimeout> | null = null;
  private disposed = false;

  constructor(
    private client: PolarisClient,
    readonly runId: string,
    private options: RunDetailOptions
  ) {
    const back = h('button', { className: 'pj-button pj-button-secondary pj-back', type: 'button' }, '← Runs');
    back.addEventListener('click', () => this.options.onBack());
    this.errorEl = h('div', { className: 'pj-banner', role: 'alert', hidden: true });
    this.bodyEl = h('div', { className: 'pj-run-detail-body' }, h('div', { className: 'pj-muted' }, 'Loading…'));
    this.node = h('div', { className: 'pj-run-detail' }, h('div', { className: 'pj-toolbar' }, back), this.errorEl, this.bodyEl);
  }

  async load(): Promise<void> {
    try {
      const [run, events] = await Promise.all([
        this.client.getRun(this.runId),
        this.client.runEvents(this.runId, 0).catch(() => ({ events: [], lastSeq: 0 }))
      ]);
      if (this.disposed) {
        return;
      }
      this.run = run;
      for (const event of events.events ?? []) {
        this.addEvent(event);
      }
      this.showError(null);
      this.render();
    } catch (error) {
      this.showError(`Cannot load run ${this.runId}: ${errorText(error)}`);
      if (!this.run) {
        clear(this.bodyEl);
      }
    }
  }

  /** Live event for this run (from the dashboard's stream). */
  applyEvent(event: PolarisEvent): void {
    if (event.runId !== this.runId || !this.addEvent(event)) {
      return;
    }
    if (!this.run) {
      return;
    }
    const data = event.data ?? {};
    if (event.type === 'run.status') {
      this.run.status = data.status ?? this.run.status;
      if (typeof data.attempt === 'number') {
        this.run.attemptCount = Math.max(this.run.attemptCount, data.attempt);
      }
      if (data.error) {
        this.run.error = data.error;
      }
      if ('output' in data) {
        this.run.output = data.output;
      }
      this.scheduleReload();
    } else if (event.type === 'run.log') {
      this.run.logs = [...(this.run.logs ?? []), { level: String(data.level ?? 'info'), message: String(data.message ?? ''), data: data.data, ts: event.ts }];
    } else if (event.type === 'run.metadata') {
      this.run.metadata = data.metadata ?? this.run.metadata;
    }
    this.scheduleRender();
  }

  /** Coalesce bursts of events (streamed deltas) into one repaint. */
  private scheduleRender(): void {
    if (this.renderTimer) {
      return;
    }
    this.renderTimer = setTimeout(() => {
      this.renderTimer = null;
      if (!this.disposed) {
        this.render();
      }
    }, 150);
  }

  dispose(): void {
    this.disposed = true;
    if (this.reloadTimer) {
      clearTimeout(this.reloadTimer);
    }
    if (this.renderTimer) {
      clearTimeout(this.renderTimer);
    }
    this.progress?.dispose();
    this.node.remove();
  }

  private addEvent(event: PolarisEvent): boolean {
    if (this.seen.has(event.seq)) {
      return false;
    }
    this.seen.add(event.seq);
    this.events.push(event);
    this.events.sort((a, b) => a.seq - b.seq);
    return true;
  }

  /** Durations, attempts and timestamps come from the server: refresh after a status change. */
  private scheduleReload(): void {
    if (this.reloadTimer) {
      // A change while a reload is pending (EXECUTING then COMPLETED within the window) must
      // still be fetched: the pending request may read the earlier state.
      this.reloadAgain = true;
      return;
    }
    this.reloadTimer = setTimeout(() => {
      void this.client.getRun(this.runId).then(run => {
        if (!this.disposed) {
          this.run = run;
          this.render();
        }
      }, () => undefined).finally(() => {
        this.reloadTimer = null;
        if (this.reloadAgain && !this.disposed) {
          this.reloadAgain = false;
          this.scheduleReload();
        }
      });
    }, 300);
  }

  private showError(text: string | null): void {
    this.errorEl.textContent = text ?? '';
    this.errorEl.hidden = !text;
  }

  private async act(button: HTMLButtonElement, action: () => Promise<void>): Promise<void> {
    button.disabled = true;
    try {
      await action();
      this.showError(null);
    } catch (error) {
      this.showError(errorText(error));
    } finally {
      button.disabled = false;
    }
  }

  private render(): void {
    const run = this.run;
    if (!run) {
      return;
    }
    // Keep what the user opened or closed; a section shown for the first time (e.g. Progress,
    // once the first generation event arrives) starts in its default state.
    const openSections = new Set<string>();
    const shownSections = new Set<string>();
    this.bodyEl.querySelectorAll<HTMLDetailsElement>('details[data-section]').forEach(d => {
      shownSections.add(d.dataset.section ?? '');
      if (d.open) {
        openSections.add(d.dataset.section ?? '');
      }
    });
    const section = (name: string, title: string, content: Node, openByDefault = false): HTMLElement => {
      const details = h('details', { className: 'pj-section', 'data-section': name }, h('summary', null, title), content);
      details.open = shownSections.has(name) ? openSections.has(name) : openByDefault;
      return details;
    };

    const finished = isFinalRun(run.status);
    const cancel = h(
      'button',
      {
        className: 'pj-button pj-button-danger pj-cancel-run',
        type: 'button',
        disabled: finished,
        title: finished ? `This run is ${statusLabel(run.status)}: there is nothing to cancel` : 'Cancel this run'
      },
      'Cancel'
    ) as HTMLButtonElement;
    cancel.addEventListener('click', () =>
      void this.act(cancel, async () => {
        this.run = { ...run, ...(await this.client.cancelRun(run.id)) };
        this.render();
      })
    );
    const replay = h('button', { className: 'pj-button pj-button-secondary pj-replay-run', type: 'button' }, 'Replay') as HTMLButtonElement;
    replay.addEventListener('click', () =>
      void this.act(replay, async () => {
        const result = await this.client.replayRun(run.id);
        this.options.onOpenRun(result.id);
      })
    );

    const overview = h('table', { className: 'pj-kv' });
    const row = (key: string, value: Node | string | null | undefined): void => {
      if (value === null || value === undefined || value === '') {
        return;
      }
      overview.appendChild(h('tr', null, h('th', null, key), h('td', null, value)));
    };
    row('Run', h('code', null, run.id));
    row('Task', run.taskId);
    row('Created', formatTime(run.createdAt));
    row('Started', formatTime(run.startedAt));
    row('Finished', run.finishedAt ? formatTime(run.finishedAt) : null);
    row('Duration', formatDuration(run.durationMs));
    row('Attempts', String(run.attemptCount ?? 0));
    row('Queue', run.queue ?? null);
    row('Delayed until', run.delayUntil ? formatTime(run.delayUntil) : null);
    row('Waiting', run.waitingReason ?? null);
    row('Idempotency key', run.idempotencyKey ?? null);
    row('Concurrency key', run.concurrencyKey ?? null);
    row('TTL', run.ttlS ? `${run.ttlS} s` : null);
    if (run.replayedFrom) {
      const link = h('a', { href: '#', className: 'pj-link' }, run.replayedFrom);
      link.addEventListener('click', event => {
        event.preventDefault();
        this.options.onOpenRun(run.replayedFrom!);
      });
      row('Replay of', link);
    }
    if (run.tags?.length) {
      row('Tags', h('span', null, ...run.tags.map(t => h('span', { className: 'pj-tag' }, t))));
    }

    const parts: HTMLElement[] = [
      h(
        'div',
        { className: 'pj-run-header' },
        h('span', { className: 'pj-run-task' }, run.taskId),
        h('span', { className: statusClass(run.status) }, statusLabel(run.status))
      ),
      h('div', { className: 'pj-run-actions' }, cancel, replay),
      overview
    ];

    const generation = this.events.filter(e => e.type.startsWith('generation.') || e.type === 'run.status');
    if (this.events.some(e => e.type.startsWith('generation.'))) {
      const holder = h('div', { className: 'pj-run-progress' });
      this.progress?.dispose();
      this.progress = new ProgressView(holder);
      const folder = (run.payload as { path?: unknown } | null)?.path;
      this.progress.setSnapshot({ status: run.status, runId: run.id, folder: typeof folder === 'string' ? folder : null });
      this.progress.applyEvents(generation);
      this.progress.setSnapshot({ ...this.progress.getSnapshot(), status: run.status });
      parts.push(section('progress', 'Progress', holder, true));
    }
    if (isNotebookRun(run, this.events)) {
      parts.push(section('notebook', 'Notebook', notebookProgress(run, this.events), true));
    }

    if (run.error) {
      parts.push(
        section(
          'error',
          'Error',
          h('pre', { className: 'pj-pre pj-run-error' }, [run.error.name, run.error.message].filter(Boolean).join(': ') + (run.error.stack ? `\n\n${run.error.stack}` : '')),
          true
        )
      );
    }
    parts.push(section('payload', 'Payload', h('pre', { className: 'pj-pre' }, prettyJson(run.payload)), true));
    if (run.output !== null && run.output !== undefined) {
      parts.push(section('output', 'Output', h('pre', { className: 'pj-pre' }, prettyJson(run.output)), true));
    }

    const attempts = h('table', { className: 'pj-table' }, h('thead', null, h('tr', null, h('th', null, '#'), h('th', null, 'Status'), h('th', null, 'Started'), h('th', null, 'Duration'), h('th', null, 'Error'))));
    const attemptRows = h('tbody');
    (run.attempts ?? []).forEach((attempt, i) => {
      attemptRows.appendChild(
        h(
          'tr',
          null,
          h('td', null, String(attempt.number ?? i + 1)),
          h('td', null, attempt.status ? h('span', { className: statusClass(String(attempt.status)) }, statusLabel(String(attempt.status))) : '—'),
          h('td', null, formatTime(attempt.startedAt)),
          h('td', null, formatDuration(attempt.durationMs)),
          h('td', { className: 'pj-cell-error' }, attempt.error ? shortJson(attempt.error.message ?? attempt.error, 200) : '')
        )
      );
    });
    attempts.appendChild(attemptRows);
    parts.push(section('attempts', `Attempts (${run.attempts?.length ?? 0})`, run.attempts?.length ? attempts : h('div', { className: 'pj-muted' }, 'No attempt yet.')));

    const logs = h('div', { className: 'pj-logs' });
    for (const log of run.logs ?? []) {
      logs.appendChild(
        h(
          'div',
          { className: `pj-log pj-log-${String(log.level ?? 'info').toLowerCase()}` },
          h('span', { className: 'pj-log-time' }, formatTime(log.ts)),
          h('span', { className: 'pj-log-level' }, String(log.level ?? 'info')),
          h('span', { className: 'pj-log-message' }, String(log.message ?? '')),
          log.data ? h('span', { className: 'pj-log-data' }, ` ${shortJson(log.data, 200)}`) : null
        )
      );
    }
    parts.push(section('logs', `Logs (${run.logs?.length ?? 0})`, run.logs?.length ? logs : h('div', { className: 'pj-muted' }, 'No logs.'), true));

    const events = h('div', { className: 'pj-events' });
    for (const event of this.events.slice(-300)) {
      events.appendChild(
        h(
          'div',
          { className: 'pj-event' },
          h('span', { className: 'pj-event-seq' }, `#${event.seq}`),
          h('span', { className: 'pj-event-type' }, event.type),
          h('span', { className: 'pj-event-data' }, shortJson(event.data, 160))
        )
      );
    }
    parts.push(section('events', `Events (${this.events.length})`, this.events.length ? events : h('div', { className: 'pj-muted' }, 'No events.')));
    parts.push(section('metadata', 'Metadata', h('pre', { className: 'pj-pre' }, prettyJson(run.metadata ?? {}))));

    clear(this.bodyEl);
    this.bodyEl.append(...parts);
  }
}
