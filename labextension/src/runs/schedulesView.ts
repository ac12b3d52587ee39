/**
 * Schedules: the cron schedules of the engine (declared in code or created
 * here), with their next and last slot in the schedule's own time zone, a form
 * to add one and Delete. A bad cron expression or time zone comes back from the
 * server as a 400 whose message is shown next to the form. A schedule declared
 * in code has no Delete (the server refuses it with 409: it would come back at
 * the next start); it says where to change it instead.
 */

import { PolarisClient, Schedule } from '../api';
import { errorText } from '../renderer/chatView';
import { clear, formatTime, h } from '../renderer/dom';
import { payloadBox, payloadSummary, readPayload, setPayloadExample } from './schedulePayload';

export class SchedulesView {
  readonly node: HTMLElement;
  private tableBody: HTMLElement;
  private errorEl: HTMLElement;
  private formError: HTMLElement;
  private taskSelect: HTMLSelectElement;
  private cronInput: HTMLInputElement;
  private zoneInput: HTMLInputElement;
  private payloadInput: HTMLTextAreaElement;
  private loadSeq = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private client: PolarisClient) {
    this.errorEl = h('div', { className: 'pj-banner', role: 'alert', hidden: true });
    this.tableBody = h('tbody');
    const table = h(
      'table',
      { className: 'pj-table pj-schedules-table' },
      h('thead', null, h('tr', null, h('th', null, 'Task'), h('th', null, 'Cron'), h('th', null, 'Next run'), h('th', null, 'Last run'), h('th', null, ''))),
      this.tableBody
    );
    this.taskSelect = h('select', { className: 'pj-select pj-schedule-task', 'aria-label': 'Task to schedule' }) as HTMLSelectElement;
    this.cronInput = h('input', { className: 'pj-input pj-schedule-cron', type: 'text', placeholder: '0 * * * *', 'aria-label': 'Cron expression' }) as HTMLInputElement;
    this.zoneInput = h('input', { className: 'pj-input pj-schedule-zone', type: 'text', 'aria-label': 'Time zone' }) as HTMLInputElement;
    this.zoneInput.value = browserZone();
    this.payloadInput = payloadBox();
    this.taskSelect.addEventListener('change', () => setPayloadExample(this.payloadInput, this.taskSelect.value));
    const add = h('button', { className: 'pj-button pj-add-schedule', type: 'submit' }, 'Add schedule') as HTMLButtonElement;
    this.formError = h('div', { className: 'pj-tool-error pj-schedule-error', role: 'alert', hidden: true });
    const form = h(
      'form',
      { className: 'pj-toolbar pj-schedule-form' },
      this.taskSelect,
      this.cronInput,
      this.zoneInput,
      this.payloadInput,
      add,
      this.formError
    ) as HTMLFormElement;
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this.create(add);
    });
    this.node = h('div', { className: 'pj-schedules' }, form, this.errorEl, h('div', { className: 'pj-table-scroll' }, table));
  }

  /** Load the schedules, and the task list of the form too unless only schedules moved. */
  async load(withTasks = true): Promise<void> {
    const seq = ++this.loadSeq;
    try {
      const [schedules, tasks] = await Promise.all([this.client.listSchedules(), withTasks ? this.client.listTasks() : null]);
      if (seq !== this.loadSeq) {
        return;
      }
      this.errorEl.hidden = true;
      if (tasks) {
        this.setTasks((tasks.tasks ?? []).map(t => t.id));
      }
      this.render(schedules.data ?? []);
    } catch (error) {
      if (seq !== this.loadSeq) {
        return;
      }
      this.errorEl.textContent = `Cannot load schedules: ${errorText(error)}`;
      this.errorEl.hidden = false;
    }
  }

  /** Reload the schedules soon, at most once every 2 s however many runs start. */
  scheduleLoad(): void {
    if (this.timer) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.load(false);
    }, 2000);
  }

  dispose(): void {
    this.loadSeq += 1;
    if (this.timer) {
      clearTimeout(this.timer);
    }
    this.node.remove();
  }

  private setTasks(ids: string[]): void {
    const current = this.taskSelect.value;
    clear(this.taskSelect);
    this.taskSelect.append(...[...ids].sort().map(id => h('option', { value: id }, id)));
    if (ids.includes(current)) {
      this.taskSelect.value = current;
    }
    setPayloadExample(this.payloadInput, this.taskSelect.value);
  }

  private async create(button: HTMLButtonElement): Promise<void> {
    const cron = this.cronInput.value.trim();
    if (!cron) {
      this.showFormError('Write a cron expression, e.g. "0 * * * *" for every hour.');
      return;
    }
    const payload = readPayload(this.payloadInput.value, this.taskSelect.value);
    if (!payload.ok) {
      this.showFormError(payload.error);
      this.payloadInput.focus();
      return;
    }
    button.disabled = true;
    try {
      const body = { task: this.taskSelect.value, cron, timezone: this.zoneInput.value.trim() || 'UTC' };
      await this.client.createSchedule(payload.value === undefined ? body : { ...body, payload: payload.value });
      this.showFormError(null);
      this.cronInput.value = '';
      this.payloadInput.value = '';
      await this.load(false);
    } catch (error) {
      this.showFormError(errorText(error));
    } finally {
      button.disabled = false;
    }
  }

  private showFormError(text: string | null): void {
    this.formError.textContent = text ?? '';
    this.formError.hidden = !text;
  }

  private render(schedules: Schedule[]): void {
    clear(this.tableBody);
    for (const schedule of schedules) {
      this.tableBody.appendChild(
        h(
          'tr',
          { className: 'pj-schedule-row', 'data-schedule-id': schedule.id, title: schedule.id },
          h('td', { className: 'pj-run-task' }, schedule.taskId, schedule.declarative ? h('span', { className: 'pj-tag', title: 'declared in code' }, 'code') : null, payloadSummary(schedule)),
          h('td', null, h('code', null, schedule.cron), ` ${schedule.timezone}`),
          zonedTimeCell(schedule.active ? schedule.nextRun : null, schedule.timezone, schedule.active ? '—' : 'paused'),
          zonedTimeCell(schedule.lastTimestamp, schedule.timezone, '—'),
          h('td', null, this.deleteControl(schedule))
        )
      );
    }
    if (!schedules.length) {
      this.tableBody.appendChild(h('tr', null, h('td', { colspan: 5, className: 'pj-muted pj-empty-row' }, 'No schedules yet.')));
    }
  }

  /** Delete for a schedule made here; a note saying where to change one declared in code. */
  private deleteControl(schedule: Schedule): HTMLElement {
    if (schedule.declarative) {
      return h(
        'span',
        {
          className: 'pj-muted pj-schedule-in-code',
          title: `Declared in code by task ${schedule.taskId}: deleting it here would not last (it is declared again when the server starts). Change or remove it where the task is defined, or in its settings.`
        },
        'in code'
      );
    }
    const remove = h('button', { className: 'pj-button pj-button-secondary pj-delete-schedule', type: 'button', title: 'Delete this schedule' }, 'Delete') as HTMLButtonElement;
    remove.addEventListener('click', () => {
      remove.disabled = true;
      this.client
        .deleteSchedule(schedule.id)
        .then(() => this.load(false))
        .catch(error => {
          remove.disabled = false;
          this.errorEl.textContent = `Cannot delete the schedule: ${errorText(error)}`;
          this.errorEl.hidden = false;
        });
    });
    return remove;
  }
}

/**
 * A time cell in the schedule's own zone, which is named ("Dec 2, 02:00 UTC", "Dec 2, 09:00
 * Europe/Paris"): cron fires in that zone. The tooltip gives the same moment in the browser's zone.
 */
function zonedTimeCell(iso: string | null | undefined, timeZone: string, empty: string): HTMLElement {
  const date = iso ? new Date(iso) : null;
  if (!date || isNaN(date.getTime())) {
    return h('td', null, empty);
  }
  const options: Intl.DateTimeFormatOptions = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  let text: string;
  try {
    text = `${new Intl.DateTimeFormat(undefined, { ...options, timeZone }).format(date)} ${timeZone}`;
  } catch {
    return h('td', null, formatTime(iso)); // a zone this browser does not know: local time
  }
  const here = browserZone();
  const title = here === timeZone ? date.toISOString() : `${new Intl.DateTimeFormat(undefined, options).format(date)} your time (${here})`;
  return h('td', { className: 'pj-zoned-time', title }, text);
}

/** The browser's IANA time zone (the server validates it), UTC when unknown. */
function browserZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}
