// Prelude: the module's handler and its invocations. The host enters with
// dispatch(request JSON, body), whose promise gives the answer: [JSON of {status,
// statusText, headers, waiting} or {error, waiting}, body]. ctx.waitUntil promises are
// awaited afterwards (host.waitDone(id)). The request names the invocations the host gave up
// on (their time limit): what they left behind is dropped (forget). JSON, because crossing
// between isolates is cheaper for one string than for a structured copy.

let handler = null;
const invocations = new Map(); // id -> {waits: [promises], resolve (the answer)}

function setHandler(namespace) {
  const main = namespace.default;
  if (main === null || (typeof main !== "object" && typeof main !== "function") || typeof main.fetch !== "function") {
    return "the module must export default { fetch(request, env, ctx) }";
  }
  handler = main;
  return "";
}

function forget(id) {
  const state = invocations.get(id);
  if (state) state.resolve(['{"forgotten":true}', null]); // the host stopped waiting for it
  invocations.delete(id);
  for (const [timer, t] of timers) if (t.invocation === id) timers.delete(timer);
  for (const [fetchId, f] of pendingFetches) if (f.invocation === id) pendingFetches.delete(fetchId);
}

async function drain(id, state) {
  let seen = 0;
  while (seen < state.waits.length) {
    const batch = state.waits.slice(seen);
    seen = state.waits.length;
    for (const result of await Promise.allSettled(batch)) {
      if (result.status === "rejected") reportUncaught(result.reason, id);
    }
  }
  invocations.delete(id);
  host.waitDone(id);
}

function answer(id, state, meta, body) {
  flushDropped(id);
  meta.waiting = state.waits.length > 0;
  state.resolve([JSON.stringify(meta), body]);
  if (meta.waiting) drain(id, state);
  else invocations.delete(id);
}

function fail(id, state, error) {
  reportUncaught(error, id);
  answer(id, state, { error: true }, null);
}

function describe(value) {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  const proto = Object.getPrototypeOf(value);
  return (proto && proto.constructor && proto.constructor.name) || "an object";
}

function respond(id, state, response) {
  if (!(response instanceof Response)) {
    fail(id, state, new TypeError(`The fetch handler must return a Response, not ${describe(response)}`));
    return;
  }
  let out;
  try {
    out = responseForHost(response);
  } catch (error) {
    fail(id, state, error);
    return;
  }
  const { body } = out;
  out.body = undefined;
  answer(id, state, out, body);
}

function dispatch(requestJson, body) {
  const incoming = JSON.parse(requestJson);
  for (const id of incoming.expired) forget(id);
  rememberUrl(`${incoming.url}\0`, incoming.urlParts);
  const id = incoming.id;
  current = id;
  return new Promise((resolve) => {
    const state = { waits: [], resolve };
    invocations.set(id, state);
    let result;
    try {
      const request = new Request(incoming.url, {
        method: incoming.method,
        headers: incoming.headers,
        [INTERNAL]: {
          data: body === null ? null : { bytes: new Uint8Array(body) },
          geo: incoming.geo,
          ip: incoming.ip,
        },
      });
      const ctx = {
        waitUntil(promise) {
          state.waits.push(Promise.resolve(promise));
        },
        passThroughOnException() {},
      };
      result = handler.fetch(request, env, ctx);
    } catch (error) {
      fail(id, state, error);
      return;
    }
    Promise.resolve(result).then(
      (response) => respond(id, state, response),
      (error) => fail(id, state, error),
    );
  });
}
