/**
 * Request/response over anywidget custom messages, keyed by `kind` + `id`
 * (the anywidget house style). Kernel → JS: snapshot / events / response;
 * JS → kernel: {kind: "request", id, action, args}.
 */

export interface AnyModel {
  get(name: string): any;
  on(event: string, callback: (...args: any[]) => void): void;
  off(event?: string | null, callback?: ((...args: any[]) => void) | null): void;
  send(content: any, callbacks?: any, buffers?: any[]): void;
}

export type KernelMessage =
  | { kind: 'snapshot'; [key: string]: any }
  | { kind: 'events'; events: any[] }
  | { kind: 'response'; id: string; ok: boolean; data?: any; error?: string; status?: number };

/** A refused request, with the HTTP-style status the kernel gave (409: a conflict, …). */
export class CommRequestError extends Error {
  constructor(
    message: string,
    readonly status: number | null
  ) {
    super(message);
    this.name = 'CommRequestError';
  }
}

interface Pending {
  resolve: (data: any) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

let counter = 0;

export class CommClient {
  private pending = new Map<string, Pending>();
  private disposed = false;

  constructor(
    private model: AnyModel,
    private onMessage: (message: KernelMessage) => void,
    private timeoutMs = 30000
  ) {
    model.on('msg:custom', this.handle);
  }

  /** Send a request; resolves with `data` of an ok response, rejects with its error. */
  request(action: string, args: Record<string, unknown> = {}): Promise<any> {
    if (this.disposed) {
      return Promise.reject(new Error('The widget was closed.'));
    }
    counter += 1;
    const id = `js-${Date.now().toString(36)}-${counter}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`The kernel did not answer "${action}" within ${Math.round(this.timeoutMs / 1000)} s (is it busy or dead?).`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.model.send({ kind: 'request', id, action, args });
      } catch (error) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  dispose(): void {
    this.disposed = true;
    this.model.off('msg:custom', this.handle);
    for (const [, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new Error('The widget was closed.'));
    }
    this.pending.clear();
  }

  private handle = (message: KernelMessage): void => {
    if (!message || typeof message !== 'object') {
      return;
    }
    if (message.kind === 'response') {
      const pending = this.pending.get(message.id);
      if (!pending) {
        return;
      }
      this.pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.ok) {
        pending.resolve(message.data);
      } else {
        pending.reject(new CommRequestError(message.error || 'The request failed.', typeof message.status === 'number' ? message.status : null));
      }
      return;
    }
    this.onMessage(message);
  };
}
