// Small helpers to build DOM nodes. Text always goes in as text nodes, never as HTML, so names
// typed by users cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An HTML element: h('a', {href: '/x', class: 'y'}, 'text', otherNode). */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same shape as h(). */
export function s(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A local wall-clock time such as 14:03:07, for "when did this happen". */
export function clock(date = new Date()) {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** A timestamp from the API (RFC 3339) as a local date and time. */
export function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** Replaces what a status line says, and how it looks: kind is 'ok', 'error' or 'busy'. */
export function say(element, kind, ...content) {
  element.dataset.kind = kind;
  element.replaceChildren(...content);
}

/** The username this browser last used, so each form starts with it. */
export function rememberedUser() {
  try {
    return localStorage.getItem('pgsse.username') ?? '';
  } catch {
    return '';
  }
}

export function rememberUser(name) {
  try {
    localStorage.setItem('pgsse.username', name);
  } catch {
    // Storage may be disabled; the forms just start empty then.
  }
}
