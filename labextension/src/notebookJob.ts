/**
 * "Run as Background Job…": run a notebook as a durable `run-notebook` run, or put it on a cron
 * schedule, from the file browser's context menu (notebooks only), the notebook toolbar or the
 * command palette. The dialog prefills the parameters of the notebook's cell tagged
 * `parameters` (read through the contents API), and offers outputs (ipynb always, HTML), a cell
 * timeout, attempts (retries) and an optional cron. A request the server refuses (400) reopens
 * the dialog with everything typed and the server's message, so nothing is lost.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, Notification, showDialog, ToolbarButton } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { PolarisClient } from './api';
import {
  initialInput,
  JobFormState,
  jobRequest,
  NotebookParameter,
  parametersCellSource,
  parseParameters
} from './notebookParams';
import { errorText } from './renderer/chatView';
import { h } from './renderer/dom';
import { JOB_OUTPUTS_DRIVE, jobOutputPath, JobOutputsDrive } from './runs/jobOutputsDrive';
import { RUN_NOTEBOOK_TASK, setOpenPath } from './runs/notebookProgress';

export const RUN_NOTEBOOK_JOB = 'polaris:run-notebook-job';
/** Opens the runs sidebar on one run (`runId`) or a tab (`tab`); registered by the main plugin. */
export const OPEN_RUN = 'polaris:open-run';

interface OpenDocument {
  context: DocumentRegistry.Context;
}

/** The dialog's body: parameters, outputs, timeout, attempts and an optional schedule. */
class NotebookJobForm extends Widget implements Dialog.IBodyWidget<JobFormState> {
  private values = new Map<string, HTMLInputElement>();
  private extraRows: Array<{ name: HTMLInputElement; value: HTMLInputElement }> = [];
  private extraHolder: HTMLElement;
  private html: HTMLInputElement;
  private timeout: HTMLInputElement;
  private attempts: HTMLInputElement;
  private cron: HTMLInputElement;
  private zone: HTMLInputElement;
  private saveFirst: HTMLInputElement | null = null;

  constructor(parameters: NotebookParameter[], hasCell: boolean, state: JobFormState, error: string, dirty: boolean) {
    super();
    this.addClass('pj-generate-form');
    this.addClass('pj-notebook-job-form');
    const rows = h('div', { className: 'pj-notebook-params', role: 'group', 'aria-label': 'Parameters' });
    for (const parameter of parameters) {
      const input = h('input', {
        type: 'text',
        className: 'pj-input pj-param-value',
        'aria-label': `Value of ${parameter.name}`,
        placeholder: 'value' in parameter ? '' : `${parameter.expression} (the notebook's default)`,
        'data-param': parameter.name
      }) as HTMLInputElement;
      input.value = state.values[parameter.name] ?? initialInput(parameter);
      this.values.set(parameter.name, input);
      rows.append(
        h(
          'label',
          { className: 'pj-param-row', title: parameter.comment ? `${parameter.expression}  # ${parameter.comment}` : parameter.expression },
          h('code', { className: 'pj-param-name' }, parameter.name),
          input,
          parameter.comment ? h('span', { className: 'pj-muted pj-param-comment' }, parameter.comment) : null
        )
      );
    }
    this.extraHolder = h('div', { className: 'pj-notebook-extra' });
    for (const row of state.extra) {
      this.addExtraRow(row.name, row.value);
    }
    const add = h('button', { type: 'button', className: 'pj-button pj-button-secondary pj-add-param' }, '+ Add parameter');
    add.addEventListener('click', () => this.addExtraRow('', '').focus());
    const note = hasCell
      ? parameters.length
        ? 'Values are JSON (3, "text", [1, 2]) or Python literals; other text is sent as text. Unchanged values keep the notebook\'s defaults.'
        : 'The cell tagged "parameters" assigns nothing that can be prefilled.'
      : 'This notebook has no cell tagged "parameters": papermill injects parameters at the top.';

    this.html = h('input', { type: 'checkbox', className: 'pj-output-html' }) as HTMLInputElement;
    this.html.checked = state.html;
    const ipynb = h('input', { type: 'checkbox', checked: true, disabled: true }) as HTMLInputElement;
    this.timeout = h('input', { type: 'number', min: 0, step: 'any', className: 'pj-input', placeholder: 'no limit', 'aria-label': 'Cell timeout (seconds)' }) as HTMLInputElement;
    this.timeout.value = state.timeoutS;
    this.attempts = h('input', { type: 'number', min: 1, max: 100, step: 1, className: 'pj-input', placeholder: 'task default', 'aria-label': 'Attempts' }) as HTMLInputElement;
    this.attempts.value = state.maxAttempts;
    this.cron = h('input', { type: 'text', className: 'pj-input', placeholder: 'e.g. 0 6 * * * (6:00 every day)', 'aria-label': 'Cron schedule' }) as HTMLInputElement;
    this.cron.value = state.cron;
    this.zone = h('input', { type: 'text', className: 'pj-input', 'aria-label': 'Time zone' }) as HTMLInputElement;
    this.zone.value = state.timezone;
    this.cron.addEventListener('input', () => this.updateAcceptLabel());

    if (dirty) {
      this.saveFirst = h('input', { type: 'checkbox' }) as HTMLInputElement;
      this.saveFirst.checked = state.saveFirst;
    }
    this.node.append(
      error ? h('div', { className: 'pj-tool-error pj-job-error', role: 'alert' }, error) : '',
      h('div', { className: 'pj-section-title' }, 'Parameters'),
      rows,
      this.extraHolder,
      h('div', null, add),
      h('div', { className: 'pj-muted pj-param-note' }, note),
      h('div', { className: 'pj-section-title' }, 'Outputs'),
      h('div', { className: 'pj-job-outputs' }, h('label', { className: 'pj-checkbox' }, ipynb, ' Executed notebook (.ipynb)'), h('label', { className: 'pj-checkbox' }, this.html, ' HTML')),
      h('div', { className: 'pj-section-title' }, 'Limits'),
      h('div', { className: 'pj-job-schedule' }, h('label', null, 'Cell timeout (seconds)', this.timeout), h('label', null, 'Attempts (1 = no retry)', this.attempts)),
      h('div', { className: 'pj-section-title' }, 'Schedule (optional: empty runs it now)'),
      h('div', { className: 'pj-job-schedule' }, h('label', null, 'Cron', this.cron), h('label', null, 'Time zone', this.zone)),
      this.saveFirst ? h('label', { className: 'pj-checkbox' }, this.saveFirst, ' Save the notebook first (the job runs the saved file)') : ''
    );
  }

  protected onAfterAttach(): void {
    this.updateAcceptLabel();
  }

  private addExtraRow(name: string, value: string): HTMLInputElement {
    const nameInput = h('input', { type: 'text', className: 'pj-input pj-param-name-input', placeholder: 'name', 'aria-label': 'Parameter name' }) as HTMLInputElement;
    const valueInput = h('input', { type: 'text', className: 'pj-input pj-param-value', placeholder: 'value', 'aria-label': 'Parameter value' }) as HTMLInputElement;
    nameInput.value = name;
    valueInput.value = value;
    const row = { name: nameInput, value: valueInput };
    const remove = h('button', { type: 'button', className: 'pj-button pj-button-secondary', 'aria-label': 'Remove parameter' }, '×');
    const line = h('div', { className: 'pj-param-row' }, nameInput, valueInput, remove);
    remove.addEventListener('click', () => {
      this.extraRows = this.extraRows.filter(r => r !== row);
      line.remove();
    });
    this.extraRows.push(row);
    this.extraHolder.append(line);
    return nameInput;
  }

  /** "Run" or "Schedule", depending on whether a cron is given. */
  private updateAcceptLabel(): void {
    const label = this.node.closest('.jp-Dialog-content')?.querySelector('.jp-mod-accept .jp-Dialog-buttonLabel');
    if (label) {
      const text = this.cron.value.trim() ? 'Schedule' : 'Run';
      label.textContent = text;
      label.setAttribute('aria-label', text); // the button's accessible name
    }
  }

  getValue(): JobFormState {
    return {
      values: Object.fromEntries([...this.values].map(([name, input]) => [name, input.value])),
      extra: this.extraRows.map(r => ({ name: r.name.value, value: r.value.value })),
      html: this.html.checked,
      timeoutS: this.timeout.value,
      maxAttempts: this.attempts.value,
      cron: this.cron.value,
      timezone: this.zone.value,
      saveFirst: this.saveFirst?.checked ?? false
    };
  }
}

/** The open document widget of `path`, if any (to offer saving it first). */
function openDocument(app: JupyterFrontEnd, path: string): OpenDocument | null {
  for (const widget of app.shell.widgets('main')) {
    const context = (widget as any).context as DocumentRegistry.Context | undefined;
    if (context && context.path === path) {
      return { context };
    }
  }
  return null;
}

function browserZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/**
 * Show the dialog for `path` and start the run (or create the schedule). Returns what was
 * created, or null when the user cancelled.
 */
export async function runNotebookJob(
  app: JupyterFrontEnd,
  client: PolarisClient,
  path: string
): Promise<{ runId: string } | { scheduleId: string } | null> {
  const model = await app.serviceManager.contents.get(path, { content: true, type: 'notebook' });
  const source = parametersCellSource(model.content);
  const parameters = source === null ? [] : parseParameters(source);
  const document = openDocument(app, path);
  const dirty = Boolean(document?.context.model.dirty);
  let state: JobFormState = {
    values: Object.fromEntries(parameters.map(p => [p.name, initialInput(p)])),
    extra: [],
    html: true,
    timeoutS: '',
    maxAttempts: '',
    cron: '',
    timezone: browserZone(),
    saveFirst: true
  };
  let error = '';
  for (;;) {
    const result = await showDialog({
      title: `Run ${model.name} as a background job`,
      body: new NotebookJobForm(parameters, source !== null, state, error, dirty),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
      focusNodeSelector: 'input.pj-param-value, input'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    state = result.value;
    try {
      const request = jobRequest(path, parameters, state);
      if (dirty && state.saveFirst && document) {
        await document.context.save();
      }
      const options = Object.keys(request.options).length ? request.options : undefined;
      if (request.cron) {
        const schedule = await client.createSchedule({
          task: RUN_NOTEBOOK_TASK,
          cron: request.cron,
          timezone: request.timezone,
          payload: request.payload,
          ...(options ? { options } : {})
        });
        Notification.success(`Scheduled ${path}: ${schedule.cron} ${schedule.timezone}, next run ${schedule.nextRun ? new Date(schedule.nextRun).toLocaleString() : 'not planned'}.`, { autoClose: 8000 });
        return { scheduleId: schedule.id };
      }
      const triggered = await client.request<{ id: string }>('POST', `tasks/${RUN_NOTEBOOK_TASK}/trigger`, {
        payload: request.payload,
        ...(options ? { options } : {})
      });
      return { runId: triggered.id };
    } catch (caught) {
      error = errorText(caught);
    }
  }
}

/** The notebook a command invocation is about: its `path` argument, the file browser's selected
 * notebook (context menu), or the notebook in the main area. */
function targetPath(app: JupyterFrontEnd, browser: IDefaultFileBrowser | null, args: Record<string, unknown>): string | null {
  const path = candidatePath(app, browser, args);
  return path && path.endsWith('.ipynb') && !isJobOutput(path) ? path : null;
}

/** A read-only output of a job (opened through the job-outputs drive): not runnable as such. */
function isJobOutput(path: string): boolean {
  return path.startsWith(`${JOB_OUTPUTS_DRIVE}:`);
}

function candidatePath(app: JupyterFrontEnd, browser: IDefaultFileBrowser | null, args: Record<string, unknown>): string | null {
  if (typeof args.path === 'string' && args.path) {
    return args.path;
  }
  if (args.origin === 'filebrowser' && browser) {
    for (const item of browser.selectedItems()) {
      if (item.type === 'notebook') {
        return item.path;
      }
    }
  }
  const path = (app.shell.currentWidget as any)?.context?.path;
  return typeof path === 'string' ? path : null;
}

export const notebookJobPlugin: JupyterFrontEndPlugin<void> = {
  id: 'polaris-jupyter:notebook-job',
  description: 'Run a notebook as a Polaris background job or on a cron schedule.',
  autoStart: true,
  optional: [IDefaultFileBrowser, ICommandPalette],
  activate: (app: JupyterFrontEnd, browser: IDefaultFileBrowser | null, palette: ICommandPalette | null) => {
    const client = new PolarisClient(app.serviceManager.serverSettings);
    app.serviceManager.contents.addDrive(new JobOutputsDrive(client));
    setOpenPath((runId, path) => app.commands.execute('docmanager:open', { path: jobOutputPath(runId, path) }));

    app.commands.addCommand(RUN_NOTEBOOK_JOB, {
      label: args => (args.isPalette ? 'Polaris: Run Notebook as Background Job…' : 'Run as Background Job…'),
      caption: 'Run this notebook with papermill in a fresh kernel as a durable Polaris run, or on a cron schedule',
      icon: args => (args.isPalette ? undefined : LabIcon.resolve({ icon: 'polaris-jupyter:polaris' })),
      isEnabled: args => targetPath(app, browser, args) !== null,
      execute: async args => {
        const path = targetPath(app, browser, args);
        if (!path) {
          Notification.warning('Polaris: open or select a notebook (.ipynb) to run it as a background job.', { autoClose: 6000 });
          return;
        }
        try {
          const created = await runNotebookJob(app, client, path);
          if (created && 'runId' in created) {
            await app.commands.execute(OPEN_RUN, { runId: created.runId });
          } else if (created) {
            await app.commands.execute(OPEN_RUN, { tab: 'schedules' });
          }
        } catch (error) {
          Notification.error(`Polaris: cannot run ${path} as a job: ${errorText(error)}`, { autoClose: 8000 });
        }
      }
    });

    app.contextMenu.addItem({
      command: RUN_NOTEBOOK_JOB,
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 3,
      args: { origin: 'filebrowser' }
    });
    if (palette) {
      palette.addItem({ command: RUN_NOTEBOOK_JOB, category: 'Polaris', args: { isPalette: true } });
      palette.addItem({ command: RUN_NOTEBOOK_JOB, category: 'Notebook Operations', args: { isPalette: true } });
    }
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: any, context: DocumentRegistry.Context) => {
        if (isJobOutput(context.path)) {
          return; // an executed notebook opened from a run: read-only, not a job to run
        }
        const button = new ToolbarButton({
          icon: LabIcon.resolve({ icon: 'polaris-jupyter:polaris' }),
          label: 'Run as job',
          tooltip: 'Run as a background job (Polaris)…',
          onClick: () => void app.commands.execute(RUN_NOTEBOOK_JOB, { path: context.path })
        });
        button.addClass('pj-notebook-job-button');
        panel.toolbar.insertItem(10, 'polaris-run-job', button);
        return button;
      }
    });
  }
};
