// The page's one connection to /sse/notifications/ (browsers allow only six connections per
// origin across all tabs, so a page never holds two), and the connection state shown to the
// person reading it: connecting, live, reconnecting, or stopped with the gateway's reason.

import { clock } from './dom.js';

const STREAM = '/sse/notifications/';
/** How long to wait before opening a new stream after the gateway refused one. */
const REOPEN_AFTER_MS = 5000;

export class LiveStream {
  /**
   * kinds: the event names to listen for; onEvent({id, kind, data, received}) is called once per
   * event, in id order; onResync(data) when the gateway says history was pruned;
   * onConnection(data) when a stream opens and the gateway says whom it is for.
   */
  constructor({ kinds, onEvent, onResync = () => {}, onConnection = () => {} }) {
    this.kinds = kinds;
    this.onEvent = onEvent;
    this.onResync = onResync;
    this.onConnection = onConnection;
    this.filter = {};
    this.lastId = null;
    this.source = null;
    this.everLive = false;
    this.lostAt = null;
    this.timer = null;
    this.view = {
      state: document.getElementById('state'),
      detail: document.getElementById('state-detail'),
      lastId: document.getElementById('last-id'),
    };
  }

  /**
   * Opens the stream with `filter` ({events, board_id}), closing any open one. With `resume`, the
   * gateway first replays every event after the last one this page saw.
   */
  open(filter = this.filter, { resume = false } = {}) {
    this.close();
    this.filter = filter;
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(filter)) {
      if (value !== undefined && value !== null && value !== '') params.set(name, value);
    }
    if (resume && this.lastId !== null) params.set('lastEventId', this.lastId);
    const query = params.toString();
    const url = query ? `${STREAM}?${query}` : STREAM;
    const source = new EventSource(url);
    this.source = source;
    if (this.everLive) {
      this.show('reconnecting', `Reconnecting${this.lostSince()}…`);
    } else {
      this.show('connecting', 'Opening the event stream…');
    }
    source.addEventListener('open', () => this.opened(source));
    source.addEventListener('error', () => this.failed(source, url));
    for (const kind of this.kinds) {
      source.addEventListener(kind, (event) => this.received(source, event));
    }
    source.addEventListener('resync', (event) => this.resynced(source, event));
    source.addEventListener('connection', (event) => {
      if (source !== this.source) return;
      // The stream's first block told the browser where it starts (the connection event carries
      // that id too): a page-level reopen resumes from there even before any event arrived.
      if (this.lastId === null && event.lastEventId) this.lastId = Number(event.lastEventId);
      try {
        this.onConnection(JSON.parse(event.data));
      } catch {
        // A connection event is information only; a page works without it.
      }
    });
  }

  close() {
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }

  /** Forgets the position, so the next open() starts from live events. */
  forget() {
    this.lastId = null;
    this.view.lastId.textContent = 'none yet';
  }

  opened(source) {
    if (source !== this.source) return;
    const back = this.lostAt !== null;
    this.everLive = true;
    this.lostAt = null;
    this.show('live', back ? `Reconnected at ${clock()}; missed events were replayed.` : `Connected at ${clock()}.`);
  }

  received(source, event) {
    if (source !== this.source) return;
    const id = Number(event.lastEventId);
    // The gateway never repeats an event; this guards against a page-level reopen overlapping.
    if (this.lastId !== null && id <= this.lastId) return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      data = event.data;
    }
    this.moved(id);
    this.onEvent({ id, kind: event.type, data, received: new Date() });
  }

  resynced(source, event) {
    if (source !== this.source) return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      data = { message: event.data };
    }
    if (event.lastEventId) this.moved(Number(event.lastEventId));
    this.onResync(data);
  }

  moved(id) {
    this.lastId = id;
    this.view.lastId.textContent = String(id);
  }

  failed(source, url) {
    if (source !== this.source) return;
    if (this.lostAt === null) this.lostAt = new Date();
    if (source.readyState === EventSource.CONNECTING) {
      // The browser retries by itself every 2 s (the gateway's `retry:`) and sends
      // Last-Event-ID, so events sent meanwhile arrive once it is back.
      this.show('reconnecting', `Stream lost${this.lostSince()}; retrying every 2 s. Events sent meanwhile will follow.`);
      return;
    }
    // Closed for good: the gateway answered with something other than a stream, and the browser
    // will not try again by itself. Find out why, then either say so or try again later.
    source.close();
    this.diagnose(url);
  }

  async diagnose(url) {
    const source = this.source;
    const refusal = await refusalOf(url);
    if (source !== this.source) return;
    if (refusal && refusal.status >= 400 && refusal.status < 500) {
      this.show('stopped', `The gateway refused the stream: ${refusal.message}`);
      return;
    }
    if (refusal && refusal.status === 200) {
      this.open(this.filter, { resume: true });
      return;
    }
    const why = refusal ? refusal.message : 'the gateway cannot be reached';
    this.show('reconnecting', `Stream lost${this.lostSince()} (${why}); trying again in ${REOPEN_AFTER_MS / 1000} s.`);
    this.timer = setTimeout(() => this.open(this.filter, { resume: true }), REOPEN_AFTER_MS);
  }

  lostSince() {
    return this.lostAt ? ` since ${clock(this.lostAt)}` : '';
  }

  show(state, detail) {
    this.view.state.textContent = state;
    this.view.state.dataset.state = state;
    this.view.detail.textContent = detail;
  }
}

/**
 * Why the gateway would not open a stream at `url`: {status, message}, or null when it cannot be
 * reached. A request that does open a stream is cut off at once.
 */
async function refusalOf(url) {
  const abort = new AbortController();
  try {
    const response = await fetch(url, { signal: abort.signal, headers: { accept: 'text/event-stream' } });
    if (response.ok) {
      return { status: response.status, message: 'the stream opens again' };
    }
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (typeof body.error === 'string') message = body.error;
    } catch {
      // Not JSON; the status says enough.
    }
    return { status: response.status, message };
  } catch {
    return null;
  } finally {
    abort.abort();
  }
}
