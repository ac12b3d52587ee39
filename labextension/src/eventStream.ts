/**
 * A resumable subscription to WS /polaris/api/v1/events.
 *
 * Tracks the last global `seq` seen; after a disconnect (server restart,
 * network blip) it reconnects with exponential backoff and `since=<last
 * seq>`, and drops any event whose seq it has already delivered, so the
 * consumer sees no gaps and no duplicates. When it never saw an event it
 * cannot resume, so it asks the consumer to reload its snapshot instead.
 */

import { PolarisClient } from './api';
import { PolarisEvent } from './renderer/types';

export type StreamState = 'connecting' | 'connected' | 'offline';

export interface EventStreamOptions {
  client: PolarisClient;
  /** Filters: run, conversation. */
  filter?: { run?: string; conversation?: string };
  onEvent: (event: PolarisEvent) => void;
  onState?: (state: StreamState, detail: string) => void;
  /** Reload snapshots: called after (re)connecting without a resumable seq. */
  onResync?: () => void;
  minDelayMs?: number;
  maxDelayMs?: number;
}

export class EventStream {
  private socket: WebSocket | null = null;
  private lastSeq: number | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private state: StreamState = 'connecting';

  constructor(private options: EventStreamOptions) {
    this.connect();
  }

  get seq(): number | null {
    return this.lastSeq;
  }

  get connectionState(): StreamState {
    return this.state;
  }

  /** Start from this seq (e.g. the lastSeq a REST snapshot reported). */
  setSince(seq: number): void {
    if (this.lastSeq === null || seq > this.lastSeq) {
      this.lastSeq = seq;
    }
  }

  /** Reconnect now (e.g. the user pressed retry), resetting the backoff. */
  reconnectNow(): void {
    this.attempt = 0;
    this.teardown();
    this.connect();
  }

  dispose(): void {
    this.closed = true;
    this.teardown();
  }

  private setState(state: StreamState, detail: string): void {
    this.state = state;
    this.options.onState?.(state, detail);
  }

  private teardown(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close();
      } catch {
        // already closed
      }
    }
  }

  private connect(): void {
    if (this.closed) {
      return;
    }
    const { client, filter } = this.options;
    const resuming = this.lastSeq !== null;
    const url = client.eventsUrl({
      run: filter?.run,
      conversation: filter?.conversation,
      since: this.lastSeq ?? undefined
    });
    this.setState('connecting', this.attempt ? `reconnecting (attempt ${this.attempt})` : 'connecting');
    let socket: WebSocket;
    try {
      const WS = (client.settings.WebSocket ?? WebSocket) as typeof WebSocket;
      socket = new WS(url);
    } catch (error) {
      this.scheduleReconnect(`cannot open the event stream: ${String(error)}`);
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.setState('connected', 'live');
      if (!resuming) {
        this.options.onResync?.();
      }
    };
    socket.onmessage = (message: MessageEvent) => {
      let event: PolarisEvent;
      try {
        event = JSON.parse(String(message.data));
      } catch {
        return;
      }
      if (typeof event?.seq !== 'number') {
        return;
      }
      if (this.lastSeq !== null && event.seq <= this.lastSeq) {
        return; // already delivered
      }
      this.lastSeq = event.seq;
      this.options.onEvent(event);
    };
    socket.onclose = (close: CloseEvent) => {
      if (this.socket !== socket) {
        return;
      }
      this.socket = null;
      const why = close.code === 1000 ? 'the server closed the connection' : `connection lost (WebSocket code ${close.code}${close.reason ? `: ${close.reason}` : ''})`;
      this.scheduleReconnect(why);
    };
    socket.onerror = () => {
      // onclose follows and schedules the reconnect.
    };
  }

  private scheduleReconnect(why: string): void {
    if (this.closed) {
      return;
    }
    const min = this.options.minDelayMs ?? 500;
    const max = this.options.maxDelayMs ?? 15000;
    const base = Math.min(max, min * 2 ** this.attempt);
    const delayMs = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.setState('offline', `${why}; reconnecting in ${Math.max(1, Math.round(delayMs / 1000))} s (attempt ${this.attempt})`);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delayMs);
  }
}
