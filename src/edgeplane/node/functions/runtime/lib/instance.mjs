// One isolate running one function version: its context with the prelude, the user's module
// evaluated, and the entry points the host calls (each entry with a time limit). What the
// isolate asks of the host goes to `owner` (see Owner below), with this instance first.

import crypto from "node:crypto";
import ivm from "isolated-vm";

import { LoadError, MISSING_HANDLER, MODULE_FILE, importError, loadError } from "./errors.mjs";
import { HOST_CALLBACKS, PRELUDE_FILE, PRELUDE_SOURCE } from "./prelude.mjs";
import { urlParts } from "./urlparts.mjs";

const SETUP_TIMEOUT_MS = 1000;
let preludeCache = null; // V8's code cache of the prelude, made by the first isolate
const URL_SETTERS = new Set(["protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"]);


// Synchronous host calls, the same for every isolate.
function urlParse(input, base) {
  try {
    return urlParts(base === undefined ? new URL(String(input)) : new URL(String(input), String(base)));
  } catch {
    return null;
  }
}

function urlSet(href, name, value) {
  const u = new URL(String(href));
  if (URL_SETTERS.has(name)) u[name] = String(value);
  return urlParts(u);
}

function random(n) {
  const size = Math.min(Math.max(0, Number(n) | 0), 65536);
  const bytes = crypto.randomBytes(size);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + size);
}

/*
 * Owner: log(instance, level, message, invocationId, dropped), respond(instance, id, metaJson, body),
 * waitDone(instance, id), timer(instance, timerId, ms, id), clearTimer(instance, timerId),
 * fetch(instance, fetchId, id, request), entryFailed(instance, id, error).
 */
export class Instance {
  constructor(isolate, owner) {
    this.isolate = isolate;
    this.owner = owner;
    this.context = null;
    this.entries = null;
    this.disposed = false;
    this.coldMs = 0;
    this.invocations = new Map(); // id -> Invocation (kept by the owner)
    this.timers = new Map(); // timer id -> {handle, invocation}
    this.expired = []; // invocation ids the isolate may still hold state for
    this.seq = 0;
    this.pending = new Set(); // entries (host calls in) not finished: {invocation}
    this.completed = 0; // entries that ran to their end
  }

  // Compile and evaluate `code` in a new isolate; LoadError when it does not load.
  static async create({ code, env, memoryMb, evalTimeoutMs }, owner, onCatastrophicError) {
    const started = performance.now();
    const isolate = new ivm.Isolate({ memoryLimit: memoryMb, onCatastrophicError });
    const instance = new Instance(isolate, owner);
    try {
      await instance.#boot(code, env, evalTimeoutMs, memoryMb);
    } catch (error) {
      instance.dispose();
      throw error instanceof LoadError ? error : loadError(error, { timeoutMs: evalTimeoutMs, memoryMb });
    }
    instance.coldMs = performance.now() - started;
    return instance;
  }

  #callbacks() {
    const self = this;
    const owner = this.owner;
    const ignored = (fn) => new ivm.Callback(fn, { ignored: true });
    const table = {
      log: ignored((level, message, id, dropped) => owner.log(self, level, message, id, dropped)),
      waitDone: ignored((id) => owner.waitDone(self, id)),
      urlParse: new ivm.Callback(urlParse),
      urlSet: new ivm.Callback(urlSet),
      random: new ivm.Callback(random),
      timer: ignored((timerId, ms, id) => owner.timer(self, timerId, ms, id)),
      clearTimer: ignored((timerId) => owner.clearTimer(self, timerId)),
      fetch: ignored((fetchId, id, request) => owner.fetch(self, fetchId, id, request)),
    };
    return HOST_CALLBACKS.map((name) => table[name]);
  }

  async #boot(code, env, evalTimeoutMs, memoryMb) {
    const isolate = this.isolate;
    this.context = await isolate.createContext();
    const script = await isolate.compileScript(PRELUDE_SOURCE, {
      filename: PRELUDE_FILE,
      ...(preludeCache ? { cachedData: preludeCache } : { produceCachedData: true }),
    });
    if (!preludeCache && script.cachedData) preludeCache = script.cachedData;
    const factory = await script.run(this.context, { timeout: SETUP_TIMEOUT_MS, reference: true });
    const entries = await factory.apply(undefined, [new ivm.ExternalCopy(env).copyInto(), ...this.#callbacks()], {
      timeout: SETUP_TIMEOUT_MS,
      result: { reference: true },
    });
    this.entries = {};
    for (const name of ["dispatch", "settle", "fire", "setHandler"]) {
      this.entries[name] = await entries.get(name, { reference: true });
    }
    const module = await isolate.compileModule(code, { filename: MODULE_FILE });
    if (module.dependencySpecifiers.length) throw importError(code, module.dependencySpecifiers[0]);
    await module.instantiate(this.context, (specifier) => {
      throw importError(code, specifier);
    });
    try {
      await module.evaluate({ timeout: evalTimeoutMs });
    } catch (error) {
      throw loadError(error, { timeoutMs: evalTimeoutMs, memoryMb });
    }
    const problem = await this.entries.setHandler.apply(undefined, [module.namespace.derefInto()], {
      timeout: SETUP_TIMEOUT_MS,
    });
    if (problem) throw new LoadError(MISSING_HANDLER);
  }

  // Enter the isolate for `invocation` with at most `timeoutMs` of run time (for its
  // synchronous part: what a promise it returns does later runs in other entries). The
  // dispatch entry's promise is its answer (owner.respond); a failure (the time limit, the
  // isolate gone) goes to owner.entryFailed.
  enter(name, args, timeoutMs, invocation) {
    if (this.disposed) return;
    const token = { invocation };
    this.pending.add(token);
    const dispatch = name === "dispatch";
    this.entries[name]
      .apply(undefined, args, {
        timeout: Math.max(1, Math.ceil(timeoutMs)),
        arguments: { copy: true },
        result: dispatch ? { promise: true, copy: true } : undefined,
      })
      .then(
        (result) => {
          this.pending.delete(token);
          this.completed++;
          if (dispatch && Array.isArray(result)) this.owner.respond(this, invocation.id, result[0], result[1]);
        },
        (error) => {
          this.pending.delete(token);
          this.owner.entryFailed(this, invocation.id, error);
        },
      );
  }

  // A mark for strayCpuMs.
  mark() {
    return { cpu: this.cpuMs(), completed: this.completed };
  }

  // The CPU time used since `mark` that no entry of a request still in time can account for
  // (none completed meanwhile, none is waiting or running): code running with no time limit,
  // such as a FinalizationRegistry callback V8 runs on its own, or queued ahead of expired
  // entries. Null when a live request's entry may have used it.
  strayCpuMs(mark) {
    if (this.completed !== mark.completed) return null;
    for (const { invocation } of this.pending) {
      if (!invocation.finished && invocation.remaining() > 0) return null;
    }
    return this.cpuMs() - mark.cpu;
  }

  // Whether V8 disposed the isolate itself (its memory limit).
  get lostToMemory() {
    return !this.disposed && this.isolate.isDisposed;
  }

  cpuMs() {
    try {
      return Number(this.isolate.cpuTime) / 1e6;
    } catch {
      return 0;
    }
  }

  async heapBytes() {
    const stats = await this.isolate.getHeapStatistics();
    return stats.used_heap_size + stats.externally_allocated_size;
  }

  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    for (const { handle } of this.timers.values()) clearTimeout(handle);
    this.timers.clear();
    try {
      if (!this.isolate.isDisposed) this.isolate.dispose();
    } catch {
      // already gone
    }
  }
}
