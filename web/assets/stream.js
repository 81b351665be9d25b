// The page's one connection to /sse/notifications/ (browsers allow only six connections per
// origin across all tabs, so a page never holds two), and the connection state shown to the
// person reading it: connecting, live, reconnecting, or stopped with the gateway's reason.
//
// The stream is the browser's own EventSource: it reconnects by itself every `retry:` (2 s) and
// sends Last-Event-ID, so the gateway replays what was sent meanwhile. An EventSource hands a
// page only the event names it listens for; a page that wants every kind asks the gateway for
// envelopes (`envelope=1`): each event then arrives as a `message` with its kind in its data.

import { clock } from './dom.js';

const STREAM = '/sse/notifications/';
/** How long to wait before opening a new stream after the gateway refused one without saying. */
const REOPEN_AFTER_MS = 5000;
/** How long the page waits for the gateway to say why it refused a stream. */
const DIAGNOSE_MS = 10_000;

export class LiveStream {
  /**
   * kinds: the event names to listen for, or null for every kind (in envelopes); recent: how
   * many ids back a new stream starts, so that it opens with recent history (a reconnect
   * resumes instead); onEvent({id, kind, data, received}) is called once per event, in id
   * order; onResync(data) when the gateway says history was pruned; onConnection(data) when a
   * stream opens and the gateway says whom it is for; onStopped({status, message}) when the
   * gateway refused the stream for good.
   */
  constructor({ kinds = null, recent = 0, onEvent, onResync = () => {},
    onConnection = () => {}, onStopped = () => {} }) {
    Object.assign(this, { kinds, recent, onEvent, onResync, onConnection, onStopped });
    this.filter = {};
    this.lastId = null;
    this.source = null;
    this.everLive = false;
    this.lostAt = null;
    this.timer = null;
    /** The stream now open: when, whether after a loss, the newest id then, events replayed. */
    this.run = null;
    this.view = {
      state: document.getElementById('state'),
      detail: document.getElementById('state-detail'),
      lastId: document.getElementById('last-id'),
    };
  }

  /**
   * Opens the stream with `filter` ({events, board_id, …}), closing any open one. With `resume`,
   * the gateway first replays every event after the last one this page saw.
   */
  open(filter = this.filter, { resume = false } = {}) {
    this.close();
    this.filter = filter;
    const url = this.url(resume);
    const source = new EventSource(url);
    this.source = source;
    if (this.everLive) this.show('reconnecting', `Reconnecting${this.lostSince()}…`);
    else this.show('connecting', 'Opening the event stream…');
    source.addEventListener('open', () => this.opened(source));
    source.addEventListener('error', () => this.failed(source, url));
    if (this.kinds === null) {
      source.addEventListener('message', (event) => this.unwrap(source, event));
      return;
    }
    for (const kind of this.kinds) {
      source.addEventListener(kind, (event) => this.received(source, event, kind, event.data));
    }
    source.addEventListener('resync', (event) => this.resynced(source, event, event.data));
    source.addEventListener('connection', (event) => this.connected(source, event, event.data));
  }

  url(resume) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(this.filter)) {
      if (value !== undefined && value !== null && value !== '') params.set(name, value);
    }
    if (this.kinds === null) params.set('envelope', '1');
    // The gateway ignores history for a stream that resumes, so it is never shown twice.
    if (this.recent > 0) params.set('history', this.recent);
    if (resume && this.lastId !== null) params.set('lastEventId', this.lastId);
    const query = params.toString();
    return query ? `${STREAM}?${query}` : STREAM;
  }

  close() {
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
  }

  /** Forgets the position, so the next open() is a new stream (with recent history). */
  forget() {
    this.lastId = null;
    this.everLive = false;
    this.lostAt = null;
    this.view.lastId.textContent = 'none yet';
  }

  opened(source) {
    if (source !== this.source) return;
    this.run = { at: clock(), back: this.everLive && this.lostAt !== null, newest: null, replayed: 0 };
    this.everLive = true;
    this.lostAt = null;
    this.show('live', this.run.back ? `Reconnected at ${this.run.at}.` : `Connected at ${this.run.at}.`);
  }

  /** An enveloped event, `{kind, data}`: the gateway's own, or one for the page. */
  unwrap(source, event) {
    const { kind, data } = parse(event.data, {});
    if (typeof kind !== 'string') return;
    if (kind === 'connection') this.connected(source, event, data);
    else if (kind === 'resync') this.resynced(source, event, data);
    else this.received(source, event, kind, data);
  }

  connected(source, event, data) {
    if (source !== this.source) return;
    // The stream's first block told the browser where it starts: a page-level reopen resumes
    // from there even before any event arrived.
    if (this.lastId === null && event.lastEventId) this.lastId = Number(event.lastEventId);
    const info = typeof data === 'string' ? parse(data, {}) : data ?? {};
    if (this.run) this.run.newest = Number.isInteger(info.newest_id) ? info.newest_id : null;
    this.onConnection(info);
  }

  received(source, event, kind, raw) {
    if (source !== this.source) return;
    const id = Number(event.lastEventId);
    // The gateway never repeats an event; this guards against a page-level reopen overlapping.
    if (this.lastId !== null && id <= this.lastId) return;
    this.moved(id);
    const data = typeof raw === 'string' ? parse(raw, raw) : raw;
    if (this.run && this.run.back && this.run.newest !== null && id <= this.run.newest) {
      this.run.replayed += 1;
      const events = this.run.replayed === 1 ? 'event' : 'events';
      this.show('live', `Reconnected at ${this.run.at}; replayed ${this.run.replayed} missed ${events}.`);
    }
    this.onEvent({ id, kind, data, received: new Date() });
  }

  resynced(source, event, raw) {
    if (source !== this.source) return;
    if (event.lastEventId) this.moved(Number(event.lastEventId));
    this.onResync(typeof raw === 'string' ? parse(raw, { message: raw }) : raw);
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
      const what = this.everLive ? `Stream lost${this.lostSince()}` : 'Cannot reach the gateway';
      this.show('reconnecting', `${what}; retrying every 2 s. Events sent meanwhile will follow.`);
      return;
    }
    // Closed for good: the gateway answered with something other than a stream, and an
    // EventSource neither retries nor tells the page the status. Ask once more to learn why.
    source.close();
    this.diagnose(url);
  }

  async diagnose(url) {
    const source = this.source;
    const refusal = await refusalOf(url);
    if (source !== this.source) return;
    if (refusal && refusal.status >= 400 && refusal.status < 500) {
      this.show('stopped', `The gateway refused the stream: ${refusal.message}`);
      this.onStopped(refusal);
      return;
    }
    if (refusal && refusal.status === 200) {
      this.open(this.filter, { resume: true });
      return;
    }
    const why = refusal ? refusal.message : 'the gateway cannot be reached';
    const wait = refusal?.retryAfterMs ?? REOPEN_AFTER_MS;
    const what = this.everLive ? `Stream lost${this.lostSince()}` : 'No stream yet';
    this.show('reconnecting', `${what} (${why}); trying again in ${wait / 1000} s.`);
    this.timer = setTimeout(() => this.open(this.filter, { resume: true }), wait);
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
 * Why the gateway would not open a stream at `url`: {status, message, retryAfterMs}, or null
 * when it cannot be reached or does not answer in time. A request that does open a stream is
 * cut off at once.
 */
async function refusalOf(url) {
  const abort = new AbortController();
  const late = setTimeout(() => abort.abort(), DIAGNOSE_MS);
  try {
    const response = await fetch(url, { signal: abort.signal, headers: { accept: 'text/event-stream' } });
    if (response.ok) return { status: response.status, message: 'the stream opens again' };
    let message = `${response.status} ${response.statusText}`.trim();
    try {
      const body = await response.json();
      if (typeof body.error === 'string') message = body.error;
    } catch {
      // Not JSON; the status says enough.
    }
    const after = Number(response.headers.get('retry-after'));
    return { status: response.status, message, retryAfterMs: after > 0 ? after * 1000 : null };
  } catch {
    return null;
  } finally {
    clearTimeout(late);
    abort.abort();
  }
}

function parse(text, otherwise) {
  try {
    return JSON.parse(text);
  } catch {
    return otherwise;
  }
}
