// Prelude: fetch(). The host makes the request (its own hosts through the node's internal
// socket, others outbound with the private-address guard) and enters the isolate again with
// the answer (settle).

let fetchSeq = 0;
const pendingFetches = new Map(); // id -> {resolve, reject, invocation}

async function fetch(input, init) {
  const request = input instanceof Request && init === undefined ? input : new Request(input, init);
  const { protocol } = new URL(request.url);
  if (protocol !== "http:" && protocol !== "https:") {
    throw new TypeError(`fetch: the "${protocol.slice(0, -1)}" scheme is not supported (http and https only)`);
  }
  const outgoing = requestForHost(request);
  return new Promise((resolve, reject) => {
    const id = ++fetchSeq;
    pendingFetches.set(id, { resolve, reject, invocation: current });
    host.fetch(id, current, outgoing);
  });
}

function settle(id, ok, answer) {
  const pending = pendingFetches.get(id);
  if (!pending) return;
  pendingFetches.delete(id);
  current = pending.invocation;
  if (!ok) {
    pending.reject(new TypeError(String(answer)));
    return;
  }
  let response;
  try {
    response = new Response(null, {
      status: answer.status,
      statusText: answer.statusText,
      headers: answer.headers,
      [INTERNAL]: {
        data: answer.body === null ? null : { bytes: new Uint8Array(answer.body) },
        url: answer.url,
        redirected: answer.redirected,
      },
    });
  } catch (error) {
    pending.reject(new TypeError(`fetch: the response could not be read: ${error.message}`));
    return;
  }
  pending.resolve(response);
}
