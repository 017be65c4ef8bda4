// One request to a function version, host side: its deadline (the version's timeout_ms of
// wall clock from the request), its answer (once: the function's Response, or an outcome
// the host decides: exception, timeout, memory), what it left running (timers, fetches,
// ctx.waitUntil work) and the end of all that.

export const MAX_SUBREQUESTS = 50;

// The function's answer as the isolate sent it (JSON of status, statusText and headers; the
// body), checked (it comes from untrusted code), or null.
function checkAnswer(answer, rawBody) {
  if (typeof answer !== "object" || answer === null) return null;
  const { status } = answer;
  if (!Number.isInteger(status) || status < 200 || status > 999) return null;
  const headers = Array.isArray(answer.headers)
    ? answer.headers.filter((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === "string" && typeof p[1] === "string")
    : [];
  let body = null;
  if (typeof rawBody === "string") body = Buffer.from(rawBody);
  else if (rawBody instanceof ArrayBuffer) body = Buffer.from(rawBody);
  return { status, statusText: typeof answer.statusText === "string" ? answer.statusText : "", headers, body };
}

export class Invocation {
  // reply(outcome, answer | null) writes the HTTP answer (once).
  constructor(version, instance, { rid, ip, started }, reply) {
    this.version = version;
    this.instance = instance;
    this.id = ++instance.seq;
    this.rid = rid;
    this.ip = ip;
    this.deadline = started + version.spec.timeout_ms;
    this.reply = reply;
    this.answered = false;
    this.waiting = false;
    this.finished = false;
    this.outcome = null;
    this.fetches = null; // an AbortController, made by the first fetch
    this.subrequests = 0;
    this.timer = setTimeout(() => this.expire(), Math.max(0, this.remaining()));
    instance.invocations.set(this.id, this);
  }

  // What aborts its fetches when it ends.
  get signal() {
    if (this.fetches === null) this.fetches = new AbortController();
    return this.fetches.signal;
  }

  remaining() {
    return this.deadline - performance.now();
  }

  // `incoming`: {method, url, headers, ip, geo}; `body`: an ArrayBuffer or null.
  start(incoming, body) {
    const request = JSON.stringify({ ...incoming, id: this.id, expired: this.instance.expired.splice(0) });
    this.enter("dispatch", [request, body]);
  }

  // Enter the isolate for this invocation with the time it has left.
  enter(name, args) {
    if (this.finished) return;
    const ms = this.remaining();
    if (ms <= 0) {
      this.expire();
      return;
    }
    this.instance.enter(name, args, ms, this);
  }

  #answer(outcome, answer) {
    this.answered = true;
    this.outcome = outcome;
    if (outcome !== "ok") this.version.errors++;
    this.reply(outcome, answer);
  }

  // The isolate's answer: a response, or {error} (the exception is logged by the prelude).
  respond(meta, body) {
    if (this.answered || this.finished) return;
    let answer = null;
    try {
      answer = JSON.parse(meta);
    } catch {
      // not from the prelude: an invalid answer
    }
    const checked = answer && !answer.error ? checkAnswer(answer, body) : null;
    if (answer && !answer.error && checked === null) {
      this.version.logLine("error", "exception: the response could not be sent (invalid status or headers)", this.rid);
    }
    this.#answer(checked ? "ok" : "exception", checked);
    this.waiting = Boolean(answer && answer.waiting);
    if (!this.waiting) this.finish(true);
  }

  // Its ctx.waitUntil promises settled.
  waitDone() {
    this.waiting = false;
    if (this.answered) this.finish(true);
  }

  // The host stops it (outcome timeout, memory or exception), answering if not done yet.
  fail(outcome, message = null) {
    if (this.finished) return;
    if (!this.answered) {
      if (message) this.version.logLine("error", message, this.rid);
      this.#answer(outcome, null);
    }
    this.finish(false);
  }

  // Its time is up: answer 503 if not answered yet, and see whether the isolate still runs.
  expire() {
    if (this.finished) return;
    const limit = this.version.spec.timeout_ms;
    if (this.answered) {
      this.version.logLine("warn", `ctx.waitUntil work was cancelled at the ${limit} ms time limit`, this.rid);
    }
    this.fail("timeout", `timeout: the invocation exceeded its ${limit} ms time limit`);
    this.version.probe(this.instance, this.rid);
  }

  // `clean`: the isolate holds nothing of it any more (it answered and its work settled).
  finish(clean) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    if (this.fetches !== null) this.fetches.abort();
    const instance = this.instance;
    for (const [id, timer] of instance.timers) {
      if (timer.invocation === this) {
        clearTimeout(timer.handle);
        instance.timers.delete(id);
      }
    }
    instance.invocations.delete(this.id);
    if (!clean && !instance.disposed) instance.expired.push(this.id);
    this.version.finished(instance);
  }
}
