// The REST API, with errors a person can read: the API's own message when it answered, and a
// plain statement when it could not be reached at all.

export class ApiError extends Error {
  constructor(message, { status = 0, field = null } = {}) {
    super(message);
    this.status = status;
    /** The request field the API blamed, if it named one. */
    this.field = field;
  }
}

/** Calls the API; resolves to the parsed JSON body, or throws an ApiError. */
export async function api(path, { method = 'GET', body } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError('Cannot reach the gateway: it may be down or restarting. Try again in a moment.');
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: a proxy's error page, say. The status line below still says what happened.
  }
  if (!response.ok) {
    const message = data && typeof data.error === 'string'
      ? data.error
      : `The gateway answered ${response.status} ${response.statusText}.`;
    throw new ApiError(message, { status: response.status, field: data?.field ?? null });
  }
  return data;
}

/** Every item of a paged list, following each page's `next` address. */
export async function all(path) {
  const items = [];
  let next = path;
  while (next) {
    const page = await api(next);
    items.push(...page.items);
    next = page.next;
  }
  return items;
}
