// /boards/{id}: the board as SVG with every saved path, new paths drawn as their newPath events
// arrive (the stream is filtered to this board), a legend of users, and drawing a path with a
// pointer or the keyboard, saved through the API.

import { ApiError, all, api } from './api.js';
import { h, rememberUser, rememberedUser, s, say, when } from './dom.js';
import { BoardView, Colours } from './grid.js';
import { LiveStream } from './stream.js';

const id = Number(location.pathname.match(/^\/boards\/(-?\d+)\/?$/)?.[1]);
const status = document.getElementById('load-status');
const legend = document.getElementById('legend');
const noPaths = document.getElementById('no-paths');
const form = document.getElementById('draw-form');
const draftText = document.getElementById('draft-points');

/** Saved paths by id; colours go to users in the order of their first path. */
const paths = new Map();
let view = null;
let stream = null;
let draft = [];
let cursor = null;

start();

async function start() {
  say(status, 'busy', 'Loading the board…');
  let board;
  try {
    board = await api(`/api/boards/${id}`);
  } catch (err) {
    boardFailed(err);
    return;
  }
  show(board);
  stream = new LiveStream({ kinds: ['newPath'], onEvent: pathCreated });
  // The stream opens before the paths are read, so a path saved meanwhile is in one or the other.
  stream.open({ board_id: id, events: 'newPath' });
  loadPaths();
}

function boardFailed(err) {
  if (err instanceof ApiError && err.status === 404) {
    document.getElementById('title').textContent = `No board ${id}`;
    document.getElementById('summary').replaceChildren('There is no board with this id. ',
      h('a', { href: '/boards/' }, 'See all boards'), '.');
    document.getElementById('state').textContent = 'not connected';
    document.getElementById('state-detail').textContent = '';
    say(status, 'error', err.message);
    return;
  }
  say(status, 'error', `Cannot load the board: ${err.message} `,
    h('button', { type: 'button', class: 'secondary', onclick: start }, 'Try again'));
}

/** "An" before a number said with a vowel first (8, 11, 18, 80–89), "A" before any other. */
function article(n) {
  return String(n).startsWith('8') || n === 11 || n === 18 ? 'An' : 'A';
}

function show(board) {
  document.title = `${board.name} · pgsse`;
  document.getElementById('title').textContent = board.name;
  document.getElementById('summary').textContent =
    `${article(board.cols)} ${board.cols} × ${board.rows} grid with ${board.dots.length} dots, created by ` +
    `${board.creator_username} on ${when(board.created_at)}.`;
  view = new BoardView(board, `Board ${board.name}: ${board.cols} by ${board.rows} grid with ${board.dots.length} dots`);
  document.getElementById('board-figure').replaceChildren(view.svg);
  document.getElementById('board-area').hidden = false;
  document.getElementById('draw').hidden = false;
  enableDrawing(board);
}

async function loadPaths() {
  say(status, 'busy', 'Loading paths…');
  try {
    for (const path of await all(`/api/boards/${id}/paths?limit=1000`)) draw(path);
    say(status, 'ok', '');
  } catch (err) {
    say(status, 'error', `Cannot load the paths: ${err.message} `,
      h('button', { type: 'button', class: 'secondary', onclick: loadPaths }, 'Try again'));
  }
}

async function pathCreated({ data }) {
  if (paths.has(data.path_id)) return;
  try {
    draw(await api(`/api/paths/${data.path_id}`));
  } catch (err) {
    say(status, 'error', `${data.user_username} drew path ${data.path_id}, but it cannot be loaded: ${err.message}`);
  }
}

function draw(path) {
  if (paths.has(path.id)) return;
  paths.set(path.id, path);
  const colours = coloursInDrawingOrder();
  view.addPath(path, colours.of(path.user_username));
  // A path that arrived out of order can change who came first: recolour everything.
  for (const shape of view.paths.children) {
    const colour = colours.of(shape.dataset.user);
    shape.setAttribute('stroke', colour);
    shape.setAttribute('fill', shape.tagName === 'circle' ? colour : 'none');
  }
  drawLegend(colours);
}

function coloursInDrawingOrder() {
  const colours = new Colours();
  for (const path of [...paths.values()].sort((a, b) => a.id - b.id)) colours.of(path.user_username);
  return colours;
}

function drawLegend(colours) {
  const counts = new Map();
  for (const path of paths.values()) counts.set(path.user_username, (counts.get(path.user_username) ?? 0) + 1);
  legend.replaceChildren(...[...colours.byUser].map(([user, colour]) => {
    const n = counts.get(user);
    return h('li', { 'data-user': user },
      s('svg', { class: 'swatch', viewBox: '0 0 20 10', 'aria-hidden': 'true' },
        s('line', { x1: 1, y1: 5, x2: 19, y2: 5, stroke: colour, 'stroke-width': 4, 'stroke-linecap': 'round' })),
      h('span', { class: 'user' }, user), ' ',
      h('span', { class: 'muted' }, n === 1 ? '1 path' : `${n} paths`));
  }));
  noPaths.hidden = paths.size > 0;
}

function enableDrawing(board) {
  const svg = view.svg;
  form.elements.user.value = rememberedUser();
  svg.setAttribute('tabindex', '0');
  svg.setAttribute('role', 'application');
  svg.setAttribute('aria-roledescription', 'drawing board');
  svg.setAttribute('aria-describedby', 'draw-help');
  svg.classList.add('drawable');
  let pressed = false;
  svg.addEventListener('pointerdown', (event) => {
    const position = view.positionAt(event.clientX, event.clientY);
    if (!position) return;
    pressed = true;
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
    add(position);
  });
  svg.addEventListener('pointermove', (event) => {
    if (!pressed) return;
    const position = view.positionAt(event.clientX, event.clientY);
    if (position) add(position);
  });
  for (const end of ['pointerup', 'pointercancel']) svg.addEventListener(end, () => { pressed = false; });
  svg.addEventListener('focus', () => {
    cursor = cursor ?? draft.at(-1) ?? [0, 0];
    view.setCursor(cursor);
  });
  svg.addEventListener('blur', () => view.setCursor(null));
  svg.addEventListener('keydown', (event) => key(event, board));
  document.getElementById('undo').addEventListener('click', () => setDraft(draft.slice(0, -1)));
  document.getElementById('clear').addEventListener('click', () => setDraft([]));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    save();
  });
}

const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

function key(event, board) {
  if (MOVES[event.key]) {
    const [dx, dy] = MOVES[event.key];
    cursor = [clamp(cursor[0] + dx, board.cols), clamp(cursor[1] + dy, board.rows)];
    view.setCursor(cursor);
    draftText.textContent = `${describe(draft)}; cursor at ${cursor[0]}, ${cursor[1]}`;
  } else if (event.key === 'Enter' || event.key === ' ') {
    add(cursor);
  } else if (event.key === 'Backspace') {
    setDraft(draft.slice(0, -1));
  } else if (event.key === 'Escape') {
    setDraft([]);
  } else {
    return;
  }
  event.preventDefault();
}

function add(position) {
  const last = draft.at(-1);
  if (last && last[0] === position[0] && last[1] === position[1]) return;
  setDraft([...draft, position]);
}

function setDraft(points) {
  draft = points;
  view.setDraft(draft);
  draftText.textContent = describe(draft);
}

function describe(points) {
  return points.length ? points.map(([x, y]) => `[${x}, ${y}]`).join(' ') : 'none yet';
}

async function save() {
  const formStatus = form.querySelector('.form-status');
  const user = form.elements.user;
  user.removeAttribute('aria-invalid');
  if (draft.length === 0) {
    say(formStatus, 'error', 'Draw at least one point first.');
    return;
  }
  say(formStatus, 'busy', 'Saving…');
  try {
    const path = await api(`/api/boards/${id}/paths`, { method: 'POST', body: { user: user.value, points: draft } });
    rememberUser(path.user_username);
    draw(path);
    setDraft([]);
    say(formStatus, 'ok', `Saved path ${path.id}.`);
  } catch (err) {
    say(formStatus, 'error', h('strong', {}, 'Not saved: '), err.message);
    if (err.field === 'user') {
      user.setAttribute('aria-invalid', 'true');
      user.focus();
    }
  }
}

function clamp(n, size) {
  return Math.min(Math.max(n, 0), size - 1);
}
