// The page's one connection to /sse/notifications/ (browsers allow only six connections per
// origin across all tabs, so a page never holds two for long), and the connection state shown
// to the person reading it: connecting, live, reconnecting, or stopped with the gateway's reason.
//
// The stream is read with fetch() (see eventstream.js), so every event name arrives. Each
// opening first reads the stream's position, the newest event's id, from its first block; a
// page that wants recent history, or a page resuming after a loss, then asks for the events
// after an earlier id instead, and knows which of them came before the opening.

import { clock } from './dom.js';
import { QUIET_MS, blocks, within } from './eventstream.js';

const STREAM = '/sse/notifications/';
/** How long to wait before reconnecting until the gateway's `retry:` says otherwise. */
const RETRY_MS = 2000;
/** How long to wait after the gateway refused a stream (5xx) without saying how long. */
const REOPEN_AFTER_MS = 5000;

/** A stream request the gateway answered with something other than a stream. */
class Refusal extends Error {
  constructor(status, message, retryAfterMs) {
    super(message);
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

export class LiveStream {
  /**
   * kinds: the event names wanted, or null for every one; recent: how many ids back a new
   * stream starts, so that it opens with recent history; onEvent({id, kind, data, received}) is
   * called once per event, in id order; onResync(data) when the gateway says history was
   * pruned; onConnection(data) when a stream opens and the gateway says whom it is for;
   * onStopped({status, message}) when the gateway refused the stream for good.
   */
  constructor({ kinds = null, recent = 0, onEvent, onResync = () => {},
    onConnection = () => {}, onStopped = () => {} }) {
    Object.assign(this, { kinds, recent, onEvent, onResync, onConnection, onStopped });
    this.filter = {};
    /** The id the stream has passed, from any block: where a reconnect resumes. */
    this.lastId = null;
    this.retryMs = RETRY_MS;
    /** The opening under way: anything a superseded one finds out is ignored. */
    this.run = null;
    this.everLive = false;
    this.lostAt = null;
    this.timer = null;
    this.view = {
      state: document.getElementById('state'),
      detail: document.getElementById('state-detail'),
      lastId: document.getElementById('last-id'),
    };
  }

  /** Opens the stream with `filter` ({events, board_id, …}), closing any open one. */
  open(filter = this.filter) {
    this.close();
    this.filter = filter;
    const run = { abort: new AbortController(), resuming: this.everLive && this.lastId !== null };
    this.run = run;
    if (this.everLive) this.show('reconnecting', `Reconnecting${this.lostSince()}…`);
    else this.show('connecting', 'Opening the event stream…');
    this.connect(run);
  }

  close() {
    clearTimeout(this.timer);
    if (this.run) this.run.abort.abort();
    this.run = null;
  }

  /** Forgets the position, so the next open() is a new stream with recent history. */
  forget() {
    this.lastId = null;
    this.everLive = false;
    this.lostAt = null;
    this.view.lastId.textContent = 'none yet';
  }

  async connect(run) {
    try {
      const probe = await this.request(run, null);
      const newest = await probe.position();
      const from = this.lastId ?? Math.max(0, newest - this.recent);
      let stream = probe;
      if (from < newest) {
        probe.cancel();
        stream = await this.request(run, from);
      }
      if (run !== this.run) return;
      this.opened(run, newest);
      for await (const block of stream.blocks()) {
        if (run !== this.run) return;
        this.take(run, block);
      }
      // The gateway ended the stream: it is shutting down, or the client fell too far behind.
      this.lost(run, 'the gateway closed it');
    } catch (error) {
      if (run !== this.run) return;
      if (error instanceof Refusal) this.refused(run, error);
      else this.lost(run, error.message);
    }
  }

  /** A stream request: the stream of blocks, or a Refusal. */
  async request(run, from) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(this.filter)) {
      if (value !== undefined && value !== null && value !== '') params.set(name, value);
    }
    if (from !== null) params.set('lastEventId', from);
    const query = params.toString();
    // A gateway that never answers ends this opening, and the page tries again.
    const late = setTimeout(() => run.abort.abort(new Error(`no answer for ${QUIET_MS / 1000} s`)), QUIET_MS);
    let response;
    try {
      response = await fetch(query ? `${STREAM}?${query}` : STREAM, {
        headers: { accept: 'text/event-stream' },
        cache: 'no-store',
        signal: run.abort.signal,
      });
    } finally {
      clearTimeout(late);
    }
    const type = response.headers.get('content-type') ?? '';
    if (!response.ok || !type.startsWith('text/event-stream')) throw await refusal(response);
    return new Opened(response);
  }

  opened(run, newest) {
    run.newest = newest;
    run.replayed = 0;
    run.at = clock();
    const back = run.resuming && this.lostAt !== null;
    this.everLive = true;
    this.lostAt = null;
    this.show('live', back ? `Reconnected at ${run.at}.` : `Connected at ${run.at}.`);
  }

  /** One block of the stream: an event, the connection's details, a resync, or a position. */
  take(run, block) {
    if (block.retry !== undefined) this.retryMs = block.retry;
    const id = block.id === undefined || block.id === '' ? null : Number(block.id);
    if (block.data === null) {
      // The gateway's word on where the stream stands wins, even over a larger id from before
      // (a resume against another database, say).
      if (id !== null) this.lastId = id;
      return;
    }
    if (block.event === 'connection') {
      this.onConnection(parse(block.data, {}));
    } else if (block.event === 'resync') {
      if (id !== null) this.moved(id);
      // A new stream that starts before the retained history has nothing to warn about.
      if (run.resuming || id === null || id > run.newest) this.onResync(parse(block.data, {}));
    } else if (id !== null && (this.lastId === null || id > this.lastId)) {
      this.received(run, id, block);
    }
  }

  received(run, id, block) {
    this.moved(id);
    if (this.kinds && !this.kinds.includes(block.event)) return;
    if (run.resuming && id <= run.newest) {
      run.replayed += 1;
      const events = run.replayed === 1 ? 'event' : 'events';
      this.show('live', `Reconnected at ${run.at}; replayed ${run.replayed} missed ${events}.`);
    }
    this.onEvent({ id, kind: block.event, data: parse(block.data, block.data), received: new Date() });
  }

  moved(id) {
    this.lastId = id;
    this.view.lastId.textContent = String(id);
  }

  /** The stream broke or ended: the page reconnects after `retry`, from where it was. */
  lost(run, why) {
    if (run !== this.run) return;
    if (this.lostAt === null) this.lostAt = new Date();
    const seconds = this.retryMs / 1000;
    const what = this.everLive ? `Stream lost${this.lostSince()}` : 'Cannot reach the gateway';
    this.show('reconnecting', `${what} (${why}); retrying every ${seconds} s. Events sent meanwhile will follow.`);
    this.timer = setTimeout(() => this.open(), this.retryMs);
  }

  /** The gateway refused the stream: for good on a 4xx (the page says why), else for a while. */
  refused(run, refusal) {
    if (refusal.status >= 400 && refusal.status < 500) {
      this.show('stopped', `The gateway refused the stream: ${refusal.message}`);
      this.onStopped({ status: refusal.status, message: refusal.message });
      return;
    }
    if (this.lostAt === null) this.lostAt = new Date();
    const wait = refusal.retryAfterMs ?? REOPEN_AFTER_MS;
    const what = this.everLive ? `Stream lost${this.lostSince()}` : 'No stream yet';
    this.show('reconnecting', `${what} (${refusal.message}); trying again in ${wait / 1000} s.`);
    this.timer = setTimeout(() => this.open(), wait);
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

/** An open stream's blocks, with the first ones kept while its position is read. */
class Opened {
  constructor(response) {
    this.iterator = blocks(response.body);
    this.early = [];
  }

  /** The stream's position: the id of its first block that has one (the newest event's). */
  async position() {
    for (;;) {
      const { value, done } = await this.iterator.next();
      if (done) throw new Error('the stream ended before it said where it starts');
      this.early.push(value);
      if (value.id !== undefined && value.id !== '') return Number(value.id);
    }
  }

  async* blocks() {
    yield* this.early;
    this.early = [];
    yield* this.iterator;
  }

  cancel() {
    this.iterator.return();
  }
}

/** The gateway's reason for a refusal: its JSON error, or the status line. */
async function refusal(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await within(response.json(), QUIET_MS);
    if (typeof body.error === 'string') message = body.error;
  } catch {
    // Not JSON; the status says enough.
  }
  const after = Number(response.headers.get('retry-after'));
  return new Refusal(response.status, message, after > 0 ? after * 1000 : null);
}

function parse(text, otherwise) {
  try {
    return JSON.parse(text);
  } catch {
    return otherwise;
  }
}
