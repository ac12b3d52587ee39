/**
 * ProgressView: live view of a project generation run (generation.* events):
 * steps with their state, a progress bar, and files as they are written. Where the host can
 * (the lab, paths.ts), each file's path opens it and the project folder has `Show in file browser`.
 */

import { clear, formatDuration, h } from './dom';
import { linkPath, revealFolderButton } from './paths';
import { isFinalRun, PolarisEvent } from './types';

export type StepState = 'pending' | 'started' | 'finished' | 'failed' | 'skipped';

export interface ProgressStep {
  id: string;
  state: StepState;
  durationMs?: number | null;
  dependsOn?: string[];
}

export interface ProgressFile {
  path: string;
  preview?: string;
}

export interface ProgressSnapshot {
  steps: ProgressStep[];
  files: ProgressFile[];
  done: number;
  total: number;
  status: string;
  runId?: string | null;
  /** The project's folder in the workspace (the run's `path`). */
  folder?: string | null;
  log?: { level: 'info' | 'error'; message: string }[];
}

const STATE_ICON: Record<StepState, string> = {
  pending: '○',
  started: '◔',
  finished: '✓',
  failed: '✗',
  skipped: '↷'
};

export class ProgressView {
  readonly node: HTMLElement;
  private state: ProgressSnapshot = { steps: [], files: [], done: 0, total: 0, status: 'QUEUED', log: [] };
  private statusEl: HTMLElement;
  private barEl: HTMLElement;
  private countEl: HTMLElement;
  private stepsEl: HTMLElement;
  private filesEl: HTMLElement;
  private logEl: HTMLElement;
  private folderEl: HTMLElement;
  private disposed = false;

  constructor(el: HTMLElement) {
    this.statusEl = h('span', { className: 'pj-badge' });
    this.countEl = h('span', { className: 'pj-progress-count' });
    this.barEl = h('div', { className: 'pj-progress-fill' });
    this.stepsEl = h('ol', { className: 'pj-progress-steps' });
    this.filesEl = h('ul', { className: 'pj-progress-files' });
    this.logEl = h('div', { className: 'pj-progress-log' });
    this.folderEl = h('div', { className: 'pj-progress-folder' });
    this.node = h(
      'div',
      { className: 'pj-progress' },
      h('div', { className: 'pj-progress-header' }, h('span', { className: 'pj-progress-title' }, 'Generating project'), this.statusEl, this.countEl),
      h('div', { className: 'pj-progress-bar', role: 'progressbar' }, this.barEl),
      this.folderEl,
      h(
        'div',
        { className: 'pj-progress-columns' },
        h('div', null, h('div', { className: 'pj-section-title' }, 'Steps'), this.stepsEl),
        h('div', null, h('div', { className: 'pj-section-title' }, 'Files'), this.filesEl)
      ),
      this.logEl
    );
    el.appendChild(this.node);
    this.render();
  }

  setSnapshot(snapshot: Partial<ProgressSnapshot>): void {
    this.state = {
      steps: (snapshot.steps ?? []).map(s => ({ ...s })),
      files: (snapshot.files ?? []).map(f => ({ ...f })),
      done: snapshot.done ?? 0,
      total: snapshot.total ?? snapshot.steps?.length ?? 0,
      status: snapshot.status ?? 'QUEUED',
      runId: snapshot.runId ?? null,
      folder: snapshot.folder ?? null,
      log: snapshot.log ? [...snapshot.log] : []
    };
    this.render();
  }

  getSnapshot(): ProgressSnapshot {
    return this.state;
  }

  applyEvents(events: PolarisEvent[]): void {
    for (const event of events) {
      this.applyEvent(event, false);
    }
    this.render();
  }

  applyEvent(event: PolarisEvent, render = true): void {
    if (this.disposed) {
      return;
    }
    if (this.state.runId && event.runId && event.runId !== this.state.runId) {
      return;
    }
    const data = event.data ?? {};
    switch (event.type) {
      case 'generation.step': {
        const state = (data.state as StepState) ?? 'started';
        const step = this.state.steps.find(s => s.id === data.stepId);
        if (step) {
          step.state = state;
          step.durationMs = data.durationMs ?? step.durationMs;
        } else if (data.stepId) {
          this.state.steps.push({ id: String(data.stepId), state, durationMs: data.durationMs });
          this.state.total = Math.max(this.state.total, this.state.steps.length);
        }
        break;
      }
      case 'generation.file': {
        const existing = this.state.files.find(f => f.path === data.path);
        if (existing) {
          existing.preview = data.preview;
        } else if (data.path) {
          this.state.files.push({ path: String(data.path), preview: data.preview });
        }
        break;
      }
      case 'generation.progress':
        this.state.done = Number(data.done ?? this.state.done);
        this.state.total = Number(data.total ?? this.state.total);
        break;
      case 'generation.info':
      case 'generation.error':
        this.state.log = [
          ...(this.state.log ?? []),
          { level: (event.type === 'generation.error' ? 'error' : 'info') as 'error' | 'info', message: String(data.message ?? '') }
        ].slice(-200);
        break;
      case 'run.status':
        if (data.status) {
          this.state.status = String(data.status);
        }
        if (data.error?.message) {
          this.state.log = [...(this.state.log ?? []), { level: 'error' as const, message: String(data.error.message) }];
        }
        break;
      default:
        return;
    }
    if (render) {
      this.render();
    }
  }

  dispose(): void {
    this.disposed = true;
    this.node.remove();
  }

  private render(): void {
    const { steps, files, status } = this.state;
    const total = Math.max(this.state.total, 0);
    const done = Math.min(this.state.done, total || this.state.done);
    const pct = total > 0 ? Math.round((100 * done) / total) : isFinalRun(status) ? 100 : 0;
    this.barEl.style.width = `${pct}%`;
    this.barEl.parentElement?.setAttribute('aria-valuenow', String(pct));
    this.countEl.textContent = total > 0 ? `${done} / ${total} steps` : '';
    this.statusEl.textContent = status.toLowerCase().replace(/_/g, ' ');
    this.statusEl.className = `pj-badge pj-badge-${status.toLowerCase()}`;

    if (this.folderEl.dataset.folder !== (this.state.folder ?? '')) {
      // Built once per folder, not on every event: a click is not lost to a re-render.
      this.folderEl.dataset.folder = this.state.folder ?? '';
      clear(this.folderEl);
      const reveal = revealFolderButton(this.state.folder);
      if (reveal) {
        this.folderEl.append(h('code', { className: 'pj-muted' }, this.state.folder ?? ''), reveal);
      }
    }

    clear(this.stepsEl);
    for (const step of steps) {
      this.stepsEl.appendChild(
        h(
          'li',
          { className: `pj-step pj-step-${step.state}` },
          h('span', { className: 'pj-step-icon', 'aria-hidden': 'true' }, STATE_ICON[step.state] ?? '•'),
          h('span', { className: 'pj-step-name' }, step.id),
          h('span', { className: 'pj-step-state' }, step.state === 'pending' ? '' : step.state),
          step.durationMs ? h('span', { className: 'pj-step-duration' }, formatDuration(step.durationMs)) : null
        )
      );
    }
    if (!steps.length) {
      this.stepsEl.appendChild(h('li', { className: 'pj-muted' }, 'Waiting for the plan…'));
    }

    const openPaths = new Set<string>();
    this.filesEl.querySelectorAll<HTMLDetailsElement>('details[data-path]').forEach(d => {
      if (d.open) {
        openPaths.add(d.dataset.path ?? '');
      }
    });
    clear(this.filesEl);
    for (const file of files) {
      const details = h('details', { 'data-path': file.path }, h('summary', null, linkPath(h('code', null, file.path), file.path)));
      details.open = openPaths.has(file.path);
      if (file.preview) {
        details.appendChild(h('pre', { className: 'pj-file-preview' }, file.preview));
      }
      this.filesEl.appendChild(h('li', null, details));
    }
    if (!files.length) {
      this.filesEl.appendChild(h('li', { className: 'pj-muted' }, 'No files yet.'));
    }

    clear(this.logEl);
    for (const line of (this.state.log ?? []).slice(-20)) {
      this.logEl.appendChild(h('div', { className: `pj-log pj-log-${line.level}` }, line.message));
    }
  }
}
