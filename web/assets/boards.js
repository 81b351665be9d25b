// /boards/: every board, newest first, a page at a time; boards created while the page is open
// are added at the top as their newBoard events arrive.

import { api } from './api.js';
import { h, say, when } from './dom.js';
import { LiveStream } from './stream.js';

const body = document.getElementById('boards');
const empty = document.getElementById('empty');
const more = document.getElementById('more');
const status = document.getElementById('load-status');
let next = '/api/boards?limit=20';

const stream = new LiveStream({ kinds: ['newBoard'], onEvent: created });
stream.open({ events: 'newBoard' });
loadPage();
more.addEventListener('click', loadPage);

/** Loads the next page of older boards. */
async function loadPage() {
  more.disabled = true;
  say(status, 'busy', 'Loading boards…');
  try {
    const page = await api(next);
    for (const board of page.items) place(board);
    next = page.next;
    say(status, 'ok', '');
  } catch (err) {
    say(status, 'error', `Cannot load the boards: ${err.message} `,
      h('button', { type: 'button', class: 'secondary', onclick: loadPage }, 'Try again'));
  } finally {
    more.hidden = !next;
    more.disabled = false;
    empty.hidden = body.children.length > 0;
  }
}

async function created({ data }) {
  try {
    place(await api(`/api/boards/${data.board_id}`));
  } catch {
    // The event alone says enough to list the board; the rest shows on its page.
    place({ id: data.board_id, name: data.board_name, creator_username: data.creator_username });
  }
  empty.hidden = true;
}

/** Adds a board's row in id order (newest first), once. */
function place(board) {
  if (body.querySelector(`tr[data-board-id="${board.id}"]`)) return;
  const row = h('tr', { 'data-board-id': board.id },
    h('th', { scope: 'row' }, h('a', { href: `/boards/${board.id}` }, board.name), ` `, h('span', { class: 'muted' }, `id ${board.id}`)),
    h('td', {}, board.creator_username),
    h('td', {}, board.cols ? `${board.cols} × ${board.rows}` : '–'),
    h('td', {}, board.dots ? board.dots.length : '–'),
    h('td', {}, board.created_at ? when(board.created_at) : 'just now'));
  const older = [...body.children].find((tr) => Number(tr.dataset.boardId) < board.id);
  body.insertBefore(row, older ?? null);
}
