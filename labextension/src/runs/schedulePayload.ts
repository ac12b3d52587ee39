/**
 * The payload field of the Schedules form: a JSON box whose text is checked before it is sent
 * (a clear message that says where the JSON breaks), an example for the chosen task, and a
 * one-line summary of a schedule's payload in the table.
 */

import type { Schedule } from '../api';
import { h, shortJson } from '../renderer/dom';
import { RUN_NOTEBOOK_TASK } from './notebookProgress';

export type PayloadRead = { ok: true; value: unknown } | { ok: false; error: string };

const RUN_NOTEBOOK_EXAMPLE = '{"path": "reports/daily.ipynb", "parameters": {"n": 3}, "outputs": ["ipynb", "html"]}';

/** The payload box, with an example placeholder for `taskId`. */
export function payloadBox(): HTMLTextAreaElement {
  const box = h('textarea', {
    className: 'pj-input pj-schedule-payload',
    rows: 2,
    spellcheck: 'false',
    'aria-label': 'Payload (JSON)'
  }) as HTMLTextAreaElement;
  setPayloadExample(box, '');
  return box;
}

/** Show the example that fits the task (run-notebook needs a path; others are free-form). */
export function setPayloadExample(box: HTMLTextAreaElement, taskId: string): void {
  box.placeholder =
    taskId === RUN_NOTEBOOK_TASK ? `Payload (JSON), e.g. ${RUN_NOTEBOOK_EXAMPLE}` : 'Payload (JSON, optional), e.g. {"key": "value"}';
}

/** The box's text as a payload: empty means none; anything else must be JSON. */
export function readPayload(text: string, taskId: string): PayloadRead {
  const trimmed = text.trim();
  if (!trimmed) {
    return taskId === RUN_NOTEBOOK_TASK
      ? { ok: false, error: `A run-notebook schedule needs a payload with the notebook's path, e.g. ${RUN_NOTEBOOK_EXAMPLE}` }
      : { ok: true, value: undefined };
  }
  try {
    return { ok: true, value: JSON.parse(trimmed) };
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    const hint = /'/.test(trimmed) ? ' (JSON strings use double quotes)' : '';
    return { ok: false, error: `The payload is not valid JSON: ${detail}${hint}.` };
  }
}

/** A short line under the task name saying what the schedule runs with, or null. */
export function payloadSummary(schedule: Schedule): HTMLElement | null {
  const payload = schedule.payload as Record<string, unknown> | null | undefined;
  if (payload === null || payload === undefined) {
    return null;
  }
  let text = shortJson(payload, 120);
  if (schedule.taskId === RUN_NOTEBOOK_TASK && typeof payload === 'object' && typeof payload.path === 'string') {
    const parameters = payload.parameters && typeof payload.parameters === 'object' ? Object.entries(payload.parameters) : [];
    text = [payload.path, parameters.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')].filter(Boolean).join(' · ');
  }
  return h('div', { className: 'pj-muted pj-schedule-payload-summary', title: JSON.stringify(payload, null, 2) }, text);
}
