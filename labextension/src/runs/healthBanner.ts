/**
 * What the engine reports as broken in GET /health, shown above the runs
 * dashboard: a task module that failed to import (its tasks are missing while
 * every other task works), with the traceback tail in an expandable element.
 */

import { Health, PolarisClient } from '../api';
import { clear, h } from '../renderer/dom';

type TaskModuleError = NonNullable<Health['taskModuleErrors']>[number];

export class HealthBanner {
  readonly node: HTMLElement;
  private loadSeq = 0;

  constructor(private client: PolarisClient) {
    this.node = h('div', { className: 'pj-health', hidden: true });
  }

  /** Ask the server again (on show, on Refresh). A failed request shows nothing: the views say why. */
  async load(): Promise<void> {
    const seq = ++this.loadSeq;
    let health: Health;
    try {
      health = await this.client.health();
    } catch {
      return;
    }
    if (seq === this.loadSeq) {
      this.render(health.taskModuleErrors ?? []);
    }
  }

  dispose(): void {
    this.loadSeq += 1;
    this.node.remove();
  }

  private render(errors: TaskModuleError[]): void {
    clear(this.node);
    for (const error of errors) {
      const text = h(
        'div',
        { className: 'pj-banner-text' },
        h('div', { className: 'pj-health-summary' }, `Task module ${error.module} failed to import: ${error.error}; its tasks are missing.`),
        h('div', { className: 'pj-health-hint' }, 'The other tasks work. Fix the module, then restart the Jupyter server to load it.')
      );
      if (error.traceback) {
        text.appendChild(h('details', { className: 'pj-health-traceback' }, h('summary', null, 'Traceback'), h('pre', { className: 'pj-pre' }, error.traceback)));
      }
      this.node.appendChild(h('div', { className: 'pj-banner pj-task-module-error', role: 'alert', 'data-module': error.module }, text));
    }
    this.node.hidden = errors.length === 0;
  }
}
