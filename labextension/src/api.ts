/**
 * REST client for /polaris/api/v1 over JupyterLab's ServerConnection (so the
 * token, cookies and XSRF header are handled the way every lab request is).
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { components, paths } from './generated/openapi';

export const API_PREFIX = 'polaris/api/v1';

/** Wire types, generated from the server's OpenAPI document (labextension/openapi.json). */
type Schemas = components['schemas'];
export type Conversation = Schemas['Conversation'];
export type Message = Schemas['Message'];
export type RunError = Schemas['RunError'];
export type Run = Schemas['Run'];
export type RunDetail = Run & Required<Pick<Run, 'attempts' | 'logs'>>;
export type TaskInfo = Schemas['Task'];
export type TaskMetrics = Schemas['TaskMetrics'];
export type MetricsBucket = Schemas['MetricsBucket'];
export type Metrics = Schemas['Metrics'];
export type Schedule = Schemas['Schedule'];
export type ProjectKind = Schemas['ProjectKind'];
export type ModelConfig = Schemas['ModelConfig'];
export type Health = Schemas['Health'];
type Body<P extends keyof paths, M extends 'post' | 'put' | 'patch'> = paths[P][M] extends {
  requestBody?: { content: { 'application/json': infer B } };
}
  ? B
  : never;
export type TriggerOptions = Schemas['TriggerOptions'];
export type CreateScheduleBody = Body<'/polaris/api/v1/schedules', 'post'>;
export type GenerateBody = Body<'/polaris/api/v1/generate', 'post'>;
export type SetModelBody = Body<'/polaris/api/v1/config', 'put'>;
export type MessageContext = Schemas['MessageContext'];
type Accepted = Schemas['Accepted'];

/** An error from the Polaris API, with a message meant for the user. */
export class PolarisApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly reason = ''
  ) {
    super(message);
    this.name = 'PolarisApiError';
  }
}

export class PolarisClient {
  readonly settings: ServerConnection.ISettings;

  constructor(settings?: ServerConnection.ISettings) {
    this.settings = settings ?? ServerConnection.makeSettings();
  }

  url(path: string, query: Record<string, string | number | null | undefined> = {}): string {
    const base = URLExt.join(this.settings.baseUrl, API_PREFIX, path);
    const params = Object.entries(query)
      .filter(([, v]) => v !== undefined && v !== null && v !== '')
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
    return params.length ? `${base}?${params.join('&')}` : base;
  }

  /** WebSocket URL for the event stream, with the token appended when lab does so. */
  eventsUrl(query: Record<string, string | number | null | undefined>): string {
    const base = URLExt.join(this.settings.wsUrl, API_PREFIX, 'events');
    const params = Object.entries(query)
      .filter(([, v]) => v !== undefined && v !== null && v !== '')
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
    if (this.settings.token && this.settings.appendToken) {
      params.push(`token=${encodeURIComponent(this.settings.token)}`);
    }
    return params.length ? `${base}?${params.join('&')}` : base;
  }

  async request<T>(method: string, path: string, body?: unknown, query: Record<string, any> = {}): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(this.url(path, query), init, this.settings);
    } catch (error) {
      throw new PolarisApiError(
        `Cannot reach the Jupyter server (${error instanceof Error ? error.message : String(error)}).`,
        0,
        'network'
      );
    }
    const text = await response.text();
    let data: any = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      let message = data?.message || data?.reason || response.statusText || 'request failed';
      if (response.status === 404 && !data?.message) {
        message = `Not found (404): ${API_PREFIX}/${path.split('?')[0]}. The Polaris server extension is missing, disabled, or older than this UI.`;
      } else if (response.status === 403) {
        message = data?.message || 'Not authorized (403): reload JupyterLab to refresh your session.';
      }
      throw new PolarisApiError(message, response.status, data?.reason ?? '');
    }
    return data as T;
  }

  // ---- chat -----------------------------------------------------------------

  listConversations(): Promise<{ data: Conversation[] }> {
    return this.request('GET', 'conversations');
  }
  createConversation(title?: string): Promise<Conversation> {
    return this.request('POST', 'conversations', title ? { title } : {});
  }
  renameConversation(id: string, title: string): Promise<Conversation> {
    return this.request('PATCH', `conversations/${encodeURIComponent(id)}`, { title });
  }
  deleteConversation(id: string): Promise<unknown> {
    return this.request('DELETE', `conversations/${encodeURIComponent(id)}`);
  }
  listMessages(conversationId: string): Promise<{ data: Message[] }> {
    return this.request('GET', `conversations/${encodeURIComponent(conversationId)}/messages`);
  }
  sendMessage(conversationId: string, content: string, context?: MessageContext): Promise<Accepted> {
    const body: Record<string, unknown> = { content };
    if (context?.currentFile) {
      body.context = context;
    }
    return this.request('POST', `conversations/${encodeURIComponent(conversationId)}/messages`, body);
  }
  cancelMessage(messageId: string): Promise<Message> {
    return this.request('POST', `messages/${encodeURIComponent(messageId)}/cancel`, {});
  }
  retryMessage(messageId: string): Promise<Accepted> {
    return this.request('POST', `messages/${encodeURIComponent(messageId)}/retry`, {});
  }

  // ---- runs -----------------------------------------------------------------

  listTasks(): Promise<{ tasks: TaskInfo[] }> {
    return this.request('GET', 'tasks');
  }
  listRuns(query: { status?: string; task?: string; tag?: string; cursor?: string; limit?: number } = {}): Promise<{ data: Run[]; nextCursor: string | null }> {
    return this.request('GET', 'runs', undefined, query);
  }
  getRun(runId: string): Promise<RunDetail> {
    return this.request('GET', `runs/${encodeURIComponent(runId)}`);
  }
  cancelRun(runId: string): Promise<Run> {
    return this.request('POST', `runs/${encodeURIComponent(runId)}/cancel`, {});
  }
  replayRun(runId: string): Promise<{ id: string }> {
    return this.request('POST', `runs/${encodeURIComponent(runId)}/replay`, {});
  }
  /** 409 (nothing changed) when a file changed after the run, unless `force`. */
  revertRun(runId: string, force = false): Promise<{ reverted: string[] }> {
    return this.request('POST', `runs/${encodeURIComponent(runId)}/revert`, { force });
  }
  runEvents(runId: string, since = 0): Promise<{ events: any[]; lastSeq: number }> {
    return this.request('GET', `runs/${encodeURIComponent(runId)}/events`, undefined, { since });
  }
  metrics(task?: string): Promise<Metrics> {
    return this.request('GET', 'metrics', undefined, { task });
  }
  listSchedules(): Promise<{ data: Schedule[] }> {
    return this.request('GET', 'schedules');
  }
  createSchedule(body: CreateScheduleBody): Promise<Schedule> {
    return this.request('POST', 'schedules', body);
  }
  deleteSchedule(scheduleId: string): Promise<null> {
    return this.request('DELETE', `schedules/${encodeURIComponent(scheduleId)}`);
  }

  health(): Promise<Health> {
    return this.request('GET', 'health');
  }

  // ---- generation and config --------------------------------------------------

  projectKinds(): Promise<{ kinds: ProjectKind[] }> {
    return this.request('GET', 'project-kinds');
  }
  generate(body: GenerateBody): Promise<{ runId: string }> {
    return this.request('POST', 'generate', body);
  }
  getConfig(): Promise<ModelConfig> {
    return this.request('GET', 'config');
  }
  putConfig(body: SetModelBody): Promise<ModelConfig> {
    return this.request('PUT', 'config', body);
  }
}
