/**
 * The runs dashboard in a main-area tab: the same Runs view as the sidebar's,
 * with the room a dashboard needs (every column, run detail beside the
 * sections instead of one long scroll). JupyterLab's side panel opens about
 * 270 px wide, which is fine for chat but too narrow for a table of runs.
 */

import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { PolarisClient } from '../api';
import { RunsPanel } from './runsPanel';

export const DASHBOARD_ID = 'polaris-runs-dashboard';

export class RunsDashboard extends Widget {
  readonly runs: RunsPanel;

  constructor(client: PolarisClient) {
    super();
    this.id = DASHBOARD_ID;
    this.addClass('pj-runs-dashboard');
    this.title.label = 'Polaris Runs';
    this.title.caption = 'Polaris: background runs, their detail and metrics';
    this.title.closable = true;
    this.runs = new RunsPanel(client);
    this.node.appendChild(this.runs.node);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.runs.dispose();
    super.dispose();
  }

  /** The live stream runs only while the tab is shown (a hidden tab costs nothing). */
  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.runs.setActive(true);
  }

  protected onBeforeHide(msg: Message): void {
    super.onBeforeHide(msg);
    this.runs.setActive(false);
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this.runs.setActive(true);
    }
  }
}
