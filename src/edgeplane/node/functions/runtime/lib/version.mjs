// A loaded function version: its spec, its isolate (created at load, disposed when a limit
// stops it, created again on the next request), its invocations and counters, and what its
// isolate asks of the host (the Instance owner: console lines, answers, timers, fetches).

import { LoadError } from "./errors.mjs";
import { Instance } from "./instance.mjs";
import { Invocation, MAX_SUBREQUESTS } from "./invocation.mjs";

export const EVAL_TIMEOUT_MS = 1000; // the module's top level (as check.mjs)
export const PROBE_MS = 50; // how long a timed-out isolate is watched for still running

function onCatastrophicError(message) {
  process.stderr.write(`isolated-vm: catastrophic error, exiting: ${message}\n`);
  process.exit(70);
}

function fetchFailure(error) {
  if (error && error.name === "AbortError") return "fetch: cancelled (the invocation ended)";
  const message = String((error && error.message) || error);
  return message.startsWith("fetch") ? message : `fetch failed: ${message}`;
}

export class FunctionVersion {
  constructor(spec, runtime) {
    this.spec = spec;
    this.runtime = runtime; // {console, outbound(request, options), settings}
    this.hosts = new Set(spec.hosts);
    this.instance = null;
    this.creating = null;
    this.coldMs = 0;
    this.invocations = 0;
    this.errors = 0;
    this.heapBytes = 0;
    this.retired = false;
  }

  get label() {
    return `${this.spec.name}@${this.spec.version}`;
  }

  setHosts(hosts) {
    this.spec.hosts = hosts;
    this.hosts = new Set(hosts);
  }

  #create() {
    const { code, env, secrets, memory_mb: memoryMb } = this.spec;
    return Instance.create({ code, env: { ...env, ...secrets }, memoryMb, evalTimeoutMs: EVAL_TIMEOUT_MS }, this, onCatastrophicError);
  }

  // Load it now (a config load): the milliseconds it took; LoadError when it does not load.
  async warm() {
    this.instance = await this.#create();
    this.coldMs = this.instance.coldMs;
    return this.coldMs;
  }

  async #acquire() {
    const instance = this.instance;
    if (instance !== null && !instance.disposed) {
      if (!instance.lostToMemory) return instance;
      this.died(instance, "memory", null);
    }
    if (this.creating === null) {
      this.creating = this.#create()
        .then((created) => {
          this.instance = created;
          return created;
        })
        .finally(() => {
          this.creating = null;
        });
    }
    return this.creating;
  }

  // Run the function for one request ({method, url, headers, ip, geo}; its body, an
  // ArrayBuffer or null); reply(outcome, answer | null) answers it.
  async invoke(incoming, body, meta, reply) {
    this.invocations++;
    let instance;
    try {
      instance = await this.#acquire();
    } catch (error) {
      const text = error instanceof LoadError ? error.describe() : String(error.message || error);
      const outcome = text.includes("memory limit") ? "memory" : "exception";
      this.errors++;
      this.logLine("error", `${outcome}: the function could not be loaded again: ${text}`, meta.rid);
      reply(outcome, null);
      return;
    }
    new Invocation(this, instance, meta, reply).start(incoming, body);
  }

  // A line of the runtime's own about this function (never dropped by the rate cap).
  logLine(level, message, rid) {
    this.runtime.console.write(this.spec.key, this.spec.version, level, message, rid, false);
  }

  // ---- the isolate's requests (Instance owner)

  // A console line, or (level null) a count of lines the isolate dropped itself.
  log(instance, level, message, id, dropped) {
    if (level === null) {
      this.runtime.console.dropped(this.spec.key, this.spec.version, Number(dropped) || 0);
      return;
    }
    const invocation = instance.invocations.get(id);
    const { key, version } = this.spec;
    this.runtime.console.write(key, version, String(level), String(message), invocation ? invocation.rid : null);
  }

  respond(instance, id, meta, body) {
    const invocation = instance.invocations.get(id);
    if (invocation) invocation.respond(meta, body);
  }

  waitDone(instance, id) {
    const invocation = instance.invocations.get(id);
    if (invocation) invocation.waitDone();
  }

  timer(instance, timerId, ms, id) {
    const invocation = instance.invocations.get(id);
    if (!invocation || instance.disposed) return; // not in an invocation (top level): never fires
    this.clearTimer(instance, timerId);
    const handle = setTimeout(() => {
      instance.timers.delete(timerId);
      invocation.enter("fire", [timerId]);
    }, Math.max(0, Number(ms) || 0));
    instance.timers.set(timerId, { handle, invocation });
  }

  clearTimer(instance, timerId) {
    const timer = instance.timers.get(timerId);
    if (timer) {
      clearTimeout(timer.handle);
      instance.timers.delete(timerId);
    }
  }

  fetch(instance, fetchId, id, request) {
    const invocation = instance.invocations.get(id);
    if (!invocation) return;
    if (++invocation.subrequests > MAX_SUBREQUESTS) {
      invocation.enter("settle", [fetchId, false, `fetch: too many subrequests (at most ${MAX_SUBREQUESTS} per request)`]);
      return;
    }
    this.runtime
      .outbound(request, {
        ownHosts: this.hosts,
        clientIp: invocation.ip,
        rid: invocation.rid,
        signal: invocation.signal,
        maxBytes: this.spec.memory_mb * 1024 * 1024,
      })
      .then(
        (answer) => invocation.enter("settle", [fetchId, true, answer]),
        (error) => invocation.enter("settle", [fetchId, false, fetchFailure(error)]),
      );
  }

  entryFailed(instance, id, error) {
    if (instance.disposed) return; // disposed by us: its invocations were stopped then
    const invocation = instance.invocations.get(id);
    if (instance.lostToMemory) {
      this.died(instance, "memory", invocation ? invocation.rid : null);
    } else if (invocation && /timed out/.test(String(error && error.message))) {
      invocation.expire();
    } else if (invocation) {
      invocation.fail("exception", `exception: the runtime could not run the function: ${error && error.message}`);
    }
  }

  // ---- limits and life

  // The isolate is gone (memory) or must go (timeout): every invocation in it is stopped.
  died(instance, outcome, rid) {
    if (instance.disposed) return;
    const why =
      outcome === "memory"
        ? `memory: the function exceeded its ${this.spec.memory_mb} MB memory limit; its isolate was disposed`
        : `timeout: the function was still running at its ${this.spec.timeout_ms} ms time limit; its isolate was disposed`;
    this.logLine("error", why, rid);
    instance.dispose();
    if (this.instance === instance) this.instance = null;
    for (const invocation of [...instance.invocations.values()]) invocation.fail(outcome);
  }

  // After a time limit: dispose the isolate if it keeps using CPU that no entry of a request
  // still in time accounts for (every entry has a time limit; code V8 runs on its own, such
  // as a FinalizationRegistry callback, has none).
  probe(instance, rid) {
    if (instance.disposed) return;
    const mark = instance.mark();
    setTimeout(() => {
      if (instance.disposed) return;
      if (instance.lostToMemory) {
        this.died(instance, "memory", rid);
        return;
      }
      const stray = instance.strayCpuMs(mark);
      if (stray !== null && stray >= PROBE_MS / 4) this.died(instance, "timeout", rid);
    }, PROBE_MS).unref();
  }

  finished(instance) {
    if (this.retired && instance.invocations.size === 0) instance.dispose();
  }

  // No longer in the config: dispose its isolate once its requests are done (at the latest
  // after its time limit).
  retire() {
    this.retired = true;
    const instance = this.instance;
    if (instance === null) return;
    if (instance.invocations.size === 0) instance.dispose();
    else setTimeout(() => this.died(instance, "timeout", null), this.spec.timeout_ms + 1000).unref();
  }

  async status() {
    const instance = this.instance;
    if (instance !== null && !instance.disposed && !instance.lostToMemory) {
      const timeout = new Promise((resolve) => setTimeout(resolve, 200, null).unref());
      const heap = await Promise.race([instance.heapBytes().catch(() => null), timeout]);
      if (heap !== null) this.heapBytes = heap;
    }
    const cpuMs = instance !== null && !instance.disposed ? instance.cpuMs() : null;
    return { key: this.spec.key, heap_bytes: this.heapBytes, cpu_ms: cpuMs, invocations: this.invocations, errors: this.errors };
  }
}
