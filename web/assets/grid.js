// A connect-the-dots board drawn as SVG: the rows × cols grid of positions, the board's dots, and
// paths over them, each in its user's colour. Position [x, y] is column x, row y, from the top left.

import { s } from './dom.js';

/** Colours told apart easily on light and dark backgrounds, handed out in order of appearance. */
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#e377c2', '#8c564b', '#bcbd22', '#7f7f7f'];

/** One colour per user: the palette first, then hues spread by the golden angle. */
export class Colours {
  constructor() {
    this.byUser = new Map();
  }

  of(user) {
    if (!this.byUser.has(user)) {
      const n = this.byUser.size;
      const colour = n < PALETTE.length ? PALETTE[n] : `hsl(${Math.round((n * 137.508) % 360)} 70% 45%)`;
      this.byUser.set(user, colour);
    }
    return this.byUser.get(user);
  }
}

export class BoardView {
  /** board: {rows, cols, dots}; label: what a screen reader says the picture is. */
  constructor(board, label) {
    this.board = board;
    this.dotKeys = new Set(board.dots.map(([x, y]) => `${x},${y}`));
    this.svg = s('svg', {
      class: 'board',
      viewBox: `-0.5 -0.5 ${board.cols} ${board.rows}`,
      role: 'img',
      'aria-label': label,
    });
    this.cells = s('g', { class: 'cells' });
    this.dots = s('g', { class: 'dots' });
    this.paths = s('g', { class: 'paths' });
    this.draft = s('g', { class: 'draft' });
    this.cursor = s('circle', { class: 'cursor', r: 0.32, hidden: true });
    this.svg.append(this.cells, this.dots, this.paths, this.draft, this.cursor);
    for (let y = 0; y < board.rows; y++) {
      for (let x = 0; x < board.cols; x++) {
        this.cells.append(s('circle', { class: 'cell', cx: x, cy: y, r: 0.06 }));
      }
    }
    this.drawDots();
  }

  drawDots() {
    this.dots.replaceChildren(...[...this.dotKeys].map((key) => {
      const [x, y] = key.split(',').map(Number);
      return s('circle', { class: 'dot', cx: x, cy: y, r: 0.2, 'data-x': x, 'data-y': y },
        s('title', {}, `dot at ${x}, ${y}`));
    }));
  }

  /** Adds or removes the dot at [x, y]; returns the dots in reading order. */
  toggleDot([x, y]) {
    const key = `${x},${y}`;
    if (this.dotKeys.has(key)) this.dotKeys.delete(key);
    else this.dotKeys.add(key);
    this.drawDots();
    return [...this.dotKeys]
      .map((k) => k.split(',').map(Number))
      .sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  }

  hasPath(id) {
    return this.paths.querySelector(`[data-path-id="${id}"]`) !== null;
  }

  /** Draws a saved path, in drawing order among the others (by id). */
  addPath(path, colour) {
    if (this.hasPath(path.id)) return;
    const shape = line(path.points, { class: 'path', stroke: colour, fill: colour, 'data-path-id': path.id, 'data-user': path.user_username });
    shape.append(s('title', {}, `path ${path.id} by ${path.user_username}, ${path.points.length} points`));
    const later = [...this.paths.children].find((el) => Number(el.dataset.pathId) > path.id);
    this.paths.insertBefore(shape, later ?? null);
  }

  /** Shows the path being drawn (not saved yet). */
  setDraft(points) {
    this.draft.replaceChildren(...(points.length ? [line(points, { class: 'draft-line' })] : []));
  }

  /** Shows the keyboard cursor at [x, y], or hides it. */
  setCursor(position) {
    if (!position) {
      this.cursor.setAttribute('hidden', '');
      return;
    }
    this.cursor.removeAttribute('hidden');
    this.cursor.setAttribute('cx', position[0]);
    this.cursor.setAttribute('cy', position[1]);
  }

  /** The grid position under a pointer, or null when it is not close to one. */
  positionAt(clientX, clientY) {
    const matrix = this.svg.getScreenCTM();
    if (!matrix) return null;
    const point = new DOMPoint(clientX, clientY).matrixTransform(matrix.inverse());
    const x = Math.round(point.x);
    const y = Math.round(point.y);
    const inside = x >= 0 && y >= 0 && x < this.board.cols && y < this.board.rows;
    const near = Math.hypot(point.x - x, point.y - y) <= 0.45;
    return inside && near ? [x, y] : null;
  }
}

/** A polyline through grid positions; a single position is a round spot. */
function line(points, attrs) {
  if (points.length === 1) {
    const [[x, y]] = points;
    return s('circle', { ...attrs, cx: x, cy: y, r: 0.14 });
  }
  return s('polyline', { ...attrs, fill: 'none', points: points.map(([x, y]) => `${x},${y}`).join(' ') });
}
