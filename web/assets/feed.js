// /sse/: the live feed. One stream, optionally filtered by kind and board, opening with the
// recent history; each event, of whatever kind, is listed newest first with the time it arrived,
// its kind, its id and its fields. Signed in, the stream also carries the notifications meant
// for that user, shown apart from the broadcasts.

import { ApiError, api } from './api.js';
import { clock, h, say } from './dom.js';
import { LiveStream } from './stream.js';

/** The board events, which the filter form chooses among. */
const KINDS = ['newBoard', 'newPath'];
/** Events for one user (from the notification table or pgsse.publish with a recipient). */
const PERSONAL = ['notification', 'message'];
/** Events for everyone published from SQL or the API. */
const SYSTEM = ['system.notice'];
/** Without authentication, whose notifications this browser listens for (`?userId=`). */
const USER_KEY = 'pgsse.listenAs';
/** The list keeps this many events, so a page left open for days stays light. */
const KEEP = 500;
/** A new stream starts this many event ids back, so the feed opens with recent history. */
const RECENT = 20;

const list = document.getElementById('events');
const empty = document.getElementById('empty');
const notes = document.getElementById('notes');
const form = document.getElementById('filters');
const filterStatus = document.getElementById('filter-status');

const signin = document.getElementById('signin');
const signout = document.getElementById('signout');
const signinStatus = document.getElementById('signin-status');
const listener = document.getElementById('listener');
const adminBox = document.getElementById('admin-box');

// No `kinds`: the stream comes in envelopes, so every kind reaches the page.
const stream = new LiveStream({
  recent: RECENT,
  onEvent: show,
  onResync: resynced,
  onConnection: connected,
  onStopped: stopped,
});

let current = filterFromAddress();
fillForm(current);
stream.open(streamParams(current));
say(filterStatus, 'ok', describe(current));

signin.addEventListener('submit', (event) => {
  event.preventDefault();
  signIn(signin.elements.username.value.trim(), signin.elements.admin.checked);
});
signout.addEventListener('click', signOut);

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const { filter, error } = filterFromForm();
  if (error) {
    say(filterStatus, 'error', error);
    return;
  }
  const query = new URLSearchParams(Object.entries(filter).filter(([, v]) => v)).toString();
  history.replaceState(null, '', query ? `?${query}` : location.pathname);
  current = filter;
  reopen();
  say(filterStatus, 'ok', describe(filter));
});

/**
 * The stream's query: the filter, widened so that notifications and system events still come
 * when only some board events are chosen, and `userId` when listening by name.
 */
function streamParams(filter) {
  const events = filter.events ? [filter.events, ...PERSONAL, ...SYSTEM].join(',') : '';
  return { events, board_id: filter.board_id, userId: listeningAs() };
}

function listeningAs() {
  try {
    return localStorage.getItem(USER_KEY) ?? '';
  } catch {
    return '';
  }
}

function listenAs(username) {
  try {
    if (username) localStorage.setItem(USER_KEY, username);
    else localStorage.removeItem(USER_KEY);
  } catch {
    // Private browsing without storage: the choice lasts until the page is reloaded.
  }
}

/**
 * Signs in with a demo token when the gateway hands them out (the cookie then goes with the
 * stream); without authentication, listens for the user's notifications by name instead.
 */
async function signIn(username, admin) {
  if (!username) {
    say(signinStatus, 'error', 'Type the username to sign in as.');
    return;
  }
  say(signinStatus, 'busy', 'Signing in…');
  try {
    await api('/api/demo/token', { method: 'POST', body: { username, admin } });
    listenAs('');
    say(signinStatus, 'ok', `Signed in as ${username} with a demo token${admin ? ' (administrator)' : ''}.`);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) {
      say(signinStatus, 'error', error.message);
      return;
    }
    // No demo sign-in here: either authentication is off, or it is on and needs a real token.
    listenAs(username);
    say(signinStatus, 'ok', `Listening for ${username}'s notifications by name. Without `
      + 'authentication anyone can do that: they are not private.');
  }
  reopen();
}

async function signOut() {
  listenAs('');
  try {
    await api('/api/demo/token', { method: 'DELETE' });
  } catch {
    // Nothing to sign out of when the gateway cannot be reached; the stream says so anyway.
  }
  say(signinStatus, 'ok', 'Signed out.');
  reopen();
}

/** Opens a new stream, with its own recent history, as whoever the page now is. */
function reopen() {
  list.replaceChildren();
  empty.hidden = false;
  stream.forget();
  stream.open(streamParams(current));
}

/**
 * The gateway's `connection` event: whom this stream is for, and whether the gateway checks who
 * that is (only then does signing in as an administrator mean anything).
 */
function connected(data) {
  const user = typeof data.user === 'string' ? data.user : null;
  listener.textContent = user
    ? `Listening as ${user}: broadcasts and ${user}'s own notifications.`
    : 'Listening to broadcasts only.';
  signout.hidden = user === null;
  adminBox.hidden = data.authenticated !== true;
}

/** The gateway refused the stream: the page listens to nothing until that changes. */
function stopped({ status }) {
  // A 401 is authentication on and no valid token.
  const signInFirst = status === 401;
  listener.textContent = signInFirst
    ? 'Not listening: this gateway needs you to sign in first.'
    : 'Not listening to anything.';
  if (signInFirst) adminBox.hidden = false;
}

/** The filter in the page's address (?events=newBoard&board_id=7), so a filtered feed can be shared. */
function filterFromAddress() {
  const params = new URLSearchParams(location.search);
  const events = (params.get('events') ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => KINDS.includes(k));
  const board = params.get('board_id') ?? '';
  return {
    events: events.length && events.length < KINDS.length ? events.join(',') : '',
    board_id: /^[1-9][0-9]*$/.test(board) ? board : '',
  };
}

function fillForm(filter) {
  const shown = filter.events ? filter.events.split(',') : KINDS;
  for (const box of form.elements.kind) box.checked = shown.includes(box.value);
  form.elements.board_id.value = filter.board_id;
}

function filterFromForm() {
  const kinds = [...form.elements.kind].filter((box) => box.checked).map((box) => box.value);
  if (kinds.length === 0) return { error: 'Choose at least one kind of event to show.' };
  const board = form.elements.board_id.value.trim();
  if (board && !/^[1-9][0-9]*$/.test(board)) {
    form.elements.board_id.setAttribute('aria-invalid', 'true');
    return { error: 'A board id is a whole number from 1 up; leave it empty for every board.' };
  }
  form.elements.board_id.removeAttribute('aria-invalid');
  return {
    filter: { events: kinds.length < KINDS.length ? kinds.join(',') : '', board_id: board },
  };
}

function describe(filter) {
  const what = filter.events
    ? filter.events.split(',').map((k) => (k === 'newBoard' ? 'new boards' : 'new paths'))
      .concat('notifications and system events').join(', ')
    : 'every kind of event';
  const where = filter.board_id ? ` on board ${filter.board_id}` : '';
  return `Showing ${what}${where}: those among the last ${RECENT} before ${clock()}, then new ones.`;
}

function show(event) {
  list.prepend(render(event));
  empty.hidden = true;
  while (list.children.length > KEEP) list.lastElementChild.remove();
}

function render({ id, kind, data, received }) {
  const group = PERSONAL.includes(kind) ? 'personal'
    : SYSTEM.includes(kind) ? 'system' : KINDS.includes(kind) ? 'board' : 'custom';
  const badge = { personal: 'for you', system: 'system', board: null, custom: null }[group];
  return h('li', { class: `event kind-${kind} ${group}`, 'data-event-id': id },
    h('div', { class: 'meta' },
      h('time', { datetime: received.toISOString() }, clock(received)),
      h('span', { class: 'kind' }, kind),
      badge && h('span', { class: 'badge' }, badge),
      h('span', { class: 'event-id' }, `id ${id}`)),
    fields(data));
}

/**
 * The event's fields as name and value; a value that is itself an object or array (a watched
 * table's `row` and `changed`) as its JSON. A board name links to its board.
 */
function fields(data) {
  if (data === null || typeof data !== 'object') return h('pre', {}, String(data));
  const rows = Object.entries(data).map(([name, value]) => {
    let shown = value !== null && typeof value === 'object' ? JSON.stringify(value) : String(value);
    if (name === 'board_name' && Number.isInteger(data.board_id)) {
      shown = h('a', { href: `/boards/${data.board_id}` }, shown);
    }
    return h('div', {}, h('dt', {}, name), h('dd', {}, shown));
  });
  return h('dl', { class: 'fields' }, rows);
}

function resynced(data) {
  const message = data.message ?? 'some events are no longer retained';
  const note = h('div', { class: 'note', role: 'alert' },
    h('p', {},
      h('strong', {}, `Resynced at ${clock()}: `),
      `${message}. The list below may be missing events; reload pages that show state (boards) to refetch it.`),
    h('button', { type: 'button', onclick: () => note.remove() }, 'Dismiss'));
  notes.prepend(note);
}
