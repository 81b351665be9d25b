// The text/event-stream format as the WHATWG HTML standard parses it ("Interpreting an event
// stream"), read from a fetch() response. The pages read the stream this way rather than with an
// EventSource, which dispatches only the event names a page registered for in advance: the
// gateway sends whatever kind its publishers name.

/** A block that grows past this is refused: the gateway's events are at most 64 KiB each. */
const MAX_BLOCK_CHARS = 1024 * 1024;
/**
 * A stream silent for this long is taken as lost (a connection can die without a word, when a
 * laptop sleeps or a network changes). The gateway writes a keep-alive comment after
 * `KEEPALIVE_SECS` (15 by default) of quiet, so a live stream is never this quiet.
 */
export const QUIET_MS = 90_000;

/**
 * The blocks of `body` (a ReadableStream of bytes), each as {id, event, data, retry}: `id` and
 * `retry` only when the block set them, `data` null when it had no data line (a browser would
 * dispatch nothing for it, but still take its id). Cancelling the iteration cancels the body.
 */
export async function* blocks(body) {
  // TextDecoderStream drops a leading byte-order mark, as the standard asks.
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  let block = empty();
  try {
    for (;;) {
      const { value, done } = await within(reader.read(), QUIET_MS);
      if (done) return;
      pending += value;
      // A final CR may be the first half of a CRLF: it waits for the next chunk.
      const cut = pending.endsWith('\r') ? pending.length - 1 : pending.length;
      const lines = pending.slice(0, cut).split(/\r\n|\r|\n/);
      pending = lines.pop() + pending.slice(cut);
      for (const line of lines) {
        if (line === '') {
          if (block.fields) yield finish(block);
          block = empty();
        } else {
          take(block, line);
        }
      }
      if (pending.length + block.size > MAX_BLOCK_CHARS) {
        throw new Error(`the stream sent a block of more than ${MAX_BLOCK_CHARS} characters`);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** `promise`, or an error once `ms` have passed without it settling. */
export function within(promise, ms) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`nothing came for ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function empty() {
  return { fields: 0, size: 0, event: '', data: null, id: undefined, retry: undefined };
}

/** One line of a block: a comment (`:…`), or a field with its value after the colon. */
function take(block, line) {
  if (line.startsWith(':')) return;
  const colon = line.indexOf(':');
  const name = colon === -1 ? line : line.slice(0, colon);
  let value = colon === -1 ? '' : line.slice(colon + 1);
  if (value.startsWith(' ')) value = value.slice(1);
  block.fields += 1;
  block.size += value.length;
  if (name === 'data') block.data = block.data === null ? value : `${block.data}\n${value}`;
  else if (name === 'event') block.event = value;
  else if (name === 'id' && !value.includes('\0')) block.id = value;
  else if (name === 'retry' && /^[0-9]+$/.test(value)) block.retry = Number(value);
}

function finish({ id, event, data, retry }) {
  return { id, event: event || 'message', data, retry };
}
