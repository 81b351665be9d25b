// /sse/test/: create users, boards and paths through the REST API, see the API's answer (or its
// error message), and the psql statement that would do the same.

import { ApiError, api } from './api.js';
import { h, rememberUser, rememberedUser, say } from './dom.js';
import { BoardView } from './grid.js';

const forms = {
  user: document.getElementById('user-form'),
  board: document.getElementById('board-form'),
  path: document.getElementById('path-form'),
  notify: document.getElementById('notify-form'),
  system: document.getElementById('system-form'),
};

/** The statement psql would run for each form, from the form's current values. */
const SQL = {
  user: (f) => `insert into app_user(username) values (${text(f.username.value)});`,
  board: (f) => `insert into board(name, creator_id, rows, cols, dots)
select ${text(f.name.value)}, id, ${number(f.rows.value, 5)}, ${number(f.cols.value, 5)}, ${text(compact(f.dots.value))}
from app_user where username = ${text(f.creator.value)};`,
  path: (f) => `insert into path(board_id, user_id, points)
select ${number(f.board.value, '…')}, id, ${text(compact(f.points.value))}
from app_user where username = ${text(f.user.value)};`,
  notify: (f) => `select pgsse.publish(${text(f.type.value)}, ${text(JSON.stringify({ text: f.text.value }))}, ${text(f.to.value)});`,
  system: (f) => `select pgsse.publish('system.notice', ${text(JSON.stringify({ text: f.text.value }))});`,
};

/** What each form sends: [method, address, body]. Throws an ApiError for input it cannot send. */
const REQUESTS = {
  user: (f) => ['POST', '/api/users', { username: f.username.value }],
  board: (f) => ['POST', '/api/boards', {
    name: f.name.value,
    creator: f.creator.value,
    rows: size(f.rows.value),
    cols: size(f.cols.value),
    dots: positions(f.dots.value, 'dots'),
  }],
  path: (f) => {
    if (!f.board.value) throw new ApiError('Choose a board first (create one above if there is none).', { field: 'board' });
    return ['POST', `/api/boards/${f.board.value}/paths`, {
      user: f.user.value,
      points: positions(f.points.value, 'points'),
    }];
  },
  notify: (f) => {
    if (!f.to.value.trim()) throw new ApiError('Name the user the notification is for.', { field: 'to' });
    return ['POST', '/api/sse/send', {
      type: f.type.value,
      data: { text: f.text.value },
      target: { userId: f.to.value.trim() },
    }];
  },
  system: (f) => ['POST', '/api/sse/send', { type: 'system.notice', data: { text: f.text.value } }],
};

/** What to say when each form succeeded. */
const DONE = {
  user: (user) => [`Created user ${user.username} (id ${user.id}).`],
  board: (board) => [
    `Created board “${board.name}” (id ${board.id}); it is on the `,
    h('a', { href: '/sse/' }, 'live feed'), ' and at ',
    h('a', { href: `/boards/${board.id}` }, `/boards/${board.id}`), '.',
  ],
  path: (path) => [
    `Saved path ${path.id} by ${path.user_username}; see it on `,
    h('a', { href: `/boards/${path.board_id}` }, `board ${path.board_id}`), '.',
  ],
  notify: (sent) => [`Sent event ${sent.id}; only streams of that user receive it.`],
  system: (sent) => [`Sent event ${sent.id} to everyone.`],
};

const preview = { view: null, box: document.getElementById('board-preview') };

for (const [name, form] of Object.entries(forms)) {
  form.addEventListener('input', () => showSql(name));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit(name);
  });
}
forms.board.addEventListener('input', drawPreview);
document.getElementById('reload-boards').addEventListener('click', () => loadBoards());
const user = rememberedUser();
forms.board.elements.creator.value = user;
forms.path.elements.user.value = user;
for (const name of Object.keys(forms)) showSql(name);
drawPreview();
loadBoards(new URLSearchParams(location.search).get('board'));

async function submit(name) {
  const form = forms[name];
  const status = form.querySelector('.form-status');
  const button = form.querySelector('button[type=submit]');
  for (const field of form.querySelectorAll('[aria-invalid]')) field.removeAttribute('aria-invalid');
  button.disabled = true;
  say(status, 'busy', 'Sending…');
  try {
    const [method, path, body] = REQUESTS[name](form.elements);
    const created = await api(path, { method, body });
    say(status, 'ok', ...DONE[name](created));
    afterCreating(name, created);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    const failed = name === 'notify' || name === 'system' ? 'Not sent: ' : 'Not saved: ';
    say(status, 'error', h('strong', {}, failed), err.message);
    const field = err.field && form.elements[err.field];
    if (field instanceof HTMLElement) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  } finally {
    button.disabled = false;
  }
}

function afterCreating(name, created) {
  if (name === 'user') {
    rememberUser(created.username);
    forms.board.elements.creator.value = created.username;
    forms.path.elements.user.value = created.username;
    showSql('board');
    showSql('path');
  } else if (name === 'board') {
    rememberUser(created.creator_username);
    loadBoards(String(created.id));
  }
}

function showSql(name) {
  const code = document.querySelector(`[data-sql="${name}"]`);
  code.textContent = SQL[name](forms[name].elements);
}

/** Fills the board list of the path form, newest first, selecting `select` if given. */
async function loadBoards(select) {
  const list = forms.path.elements.board;
  const status = forms.path.querySelector('.form-status');
  const keep = select ?? list.value;
  try {
    const page = await api('/api/boards?limit=100');
    const options = page.items.map((b) => h('option', { value: b.id }, `${b.name} (id ${b.id}, ${b.cols}×${b.rows})`));
    if (options.length === 0) options.push(h('option', { value: '' }, 'no boards yet: create one above'));
    list.replaceChildren(...options);
    if (keep && page.items.some((b) => String(b.id) === keep)) list.value = keep;
  } catch (err) {
    list.replaceChildren(h('option', { value: '' }, 'boards could not be loaded'));
    say(status, 'error', `Cannot load the boards: ${err.message}`);
  }
  showSql('path');
}

/** Redraws the board preview for the size and dots typed so far; clicking it toggles dots. */
function drawPreview() {
  const f = forms.board.elements;
  const rows = Number(f.rows.value);
  const cols = Number(f.cols.value);
  let dots;
  try {
    dots = JSON.parse(f.dots.value.trim() || '[]');
  } catch {
    dots = null;
  }
  const sizeOk = [rows, cols].every((n) => Number.isInteger(n) && n >= 1 && n <= 100);
  const dotsOk = Array.isArray(dots) && dots.every((d) => Array.isArray(d) && d.length === 2 && d.every(Number.isInteger));
  if (!sizeOk || !dotsOk) {
    preview.box.replaceChildren(h('p', { class: 'help' }, 'The preview appears once the size and dots can be read.'));
    return;
  }
  const inside = dots.filter(([x, y]) => x >= 0 && y >= 0 && x < cols && y < rows);
  const view = new BoardView({ rows, cols, dots: inside }, `Preview of a ${cols} by ${rows} board with ${inside.length} dots`);
  view.svg.addEventListener('click', (event) => {
    const position = view.positionAt(event.clientX, event.clientY);
    if (!position) return;
    const all = view.toggleDot(position);
    f.dots.value = JSON.stringify(all);
    showSql('board');
  });
  preview.view = view;
  preview.box.replaceChildren(view.svg);
}

function size(value) {
  if (value.trim() === '') return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : value;
}

function positions(value, name) {
  if (value.trim() === '') return [];
  try {
    return JSON.parse(value);
  } catch {
    throw new ApiError(`${name} must be written as JSON, for example [[0, 0], [2, 1]].`, { field: name });
  }
}

/** A SQL string literal. */
function text(value) {
  return `'${value.replaceAll("'", "''")}'`;
}

function number(value, fallback) {
  return /^\s*\d+\s*$/.test(value) ? value.trim() : String(fallback);
}

/** JSON without spaces, as PostgreSQL would print it back; the text as typed if it is not JSON. */
function compact(value) {
  try {
    return JSON.stringify(JSON.parse(value.trim() || '[]'));
  } catch {
    return value;
  }
}
