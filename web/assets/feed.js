// /sse/: the live feed. One stream, optionally filtered by kind and board; each event is listed
// newest first with the time it arrived, its kind, its id and its fields.

import { clock, h, say } from './dom.js';
import { LiveStream } from './stream.js';

const KINDS = ['newBoard', 'newPath'];
/** The list keeps this many events, so a page left open for days stays light. */
const KEEP = 500;

const list = document.getElementById('events');
const empty = document.getElementById('empty');
const notes = document.getElementById('notes');
const form = document.getElementById('filters');
const filterStatus = document.getElementById('filter-status');

const stream = new LiveStream({ kinds: KINDS, onEvent: show, onResync: resynced });

const initial = filterFromAddress();
fillForm(initial);
stream.open(initial);
say(filterStatus, 'ok', describe(initial));

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const { filter, error } = filterFromForm();
  if (error) {
    say(filterStatus, 'error', error);
    return;
  }
  const query = new URLSearchParams(Object.entries(filter).filter(([, v]) => v)).toString();
  history.replaceState(null, '', query ? `?${query}` : location.pathname);
  list.replaceChildren();
  empty.hidden = false;
  stream.forget();
  stream.open(filter);
  say(filterStatus, 'ok', describe(filter));
});

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
  const kinds = filter.events ? filter.events.split(',') : KINDS;
  const what = kinds.map((k) => (k === 'newBoard' ? 'new boards' : 'new paths')).join(' and ');
  const where = filter.board_id ? ` on board ${filter.board_id}` : '';
  return `Showing ${what}${where}, from ${clock()} on.`;
}

function show(event) {
  list.prepend(render(event));
  empty.hidden = true;
  while (list.children.length > KEEP) list.lastElementChild.remove();
}

function render({ id, kind, data, received }) {
  return h('li', { class: `event kind-${kind}`, 'data-event-id': id },
    h('div', { class: 'meta' },
      h('time', { datetime: received.toISOString() }, clock(received)),
      h('span', { class: 'kind' }, kind),
      h('span', { class: 'event-id' }, `id ${id}`)),
    fields(data));
}

/** The event's fields as name and value; a board name links to its board. */
function fields(data) {
  if (data === null || typeof data !== 'object') return h('pre', {}, String(data));
  const rows = Object.entries(data).map(([name, value]) => {
    let shown = String(value);
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
