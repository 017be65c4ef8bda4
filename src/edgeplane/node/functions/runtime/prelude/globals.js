// Prelude: console (lines go to the host with the current invocation, at most 100 a second),
// timers (armed by the
// host, which enters the isolate again to fire them), crypto.getRandomValues / randomUUID
// (bytes from the host's CSPRNG), structuredClone, queueMicrotask.

const PRELUDE_FILE = "edgeplane:prelude";
const MAX_MESSAGE = 2048;

let current = 0; // the invocation whose code runs now (set by every entry from the host)

function errorText(error) {
  let head = "Error";
  let stack = "";
  try {
    head = `${error.name}: ${error.message}`;
    stack = typeof error.stack === "string" ? error.stack : "";
  } catch {
    // a hostile getter: keep what we have
  }
  if (!stack) return head;
  return stack
    .split("\n")
    .filter((line) => !line.includes(PRELUDE_FILE))
    .join("\n");
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function inspect(value, depth = 0, seen = new Set()) {
  switch (typeof value) {
    case "string":
      return depth === 0 ? value : JSON.stringify(value);
    case "number":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return `${value}n`;
    case "boolean":
    case "undefined":
      return String(value);
    case "symbol":
      return value.toString();
    case "function":
      return `[Function: ${value.name || "(anonymous)"}]`;
  }
  if (value === null) return "null";
  if (value instanceof Error) return errorText(value);
  if (seen.has(value)) return "[Circular]";
  if (depth > 4) return Array.isArray(value) ? "[Array]" : "[Object]";
  seen.add(value);
  try {
    const inner = (v) => inspect(v, depth + 1, seen);
    if (Array.isArray(value)) {
      const items = value.slice(0, 100).map(inner);
      if (value.length > 100) items.push(`... ${value.length - 100} more items`);
      return `[ ${items.join(", ")} ]`;
    }
    if (value instanceof Date) return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
    if (value instanceof RegExp) return String(value);
    if (value instanceof Map) {
      return `Map(${value.size}) { ${[...value].slice(0, 100).map(([k, v]) => `${inner(k)} => ${inner(v)}`).join(", ")} }`;
    }
    if (value instanceof Set) return `Set(${value.size}) { ${[...value].slice(0, 100).map(inner).join(", ")} }`;
    if (ArrayBuffer.isView(value)) {
      const bytes = Array.from(new Uint8Array(value.buffer, value.byteOffset, Math.min(value.byteLength, 50)));
      return `${value.constructor.name}(${value.byteLength}) [ ${bytes.join(", ")}${value.byteLength > 50 ? ", ..." : ""} ]`;
    }
    if (value instanceof ArrayBuffer) return `ArrayBuffer { byteLength: ${value.byteLength} }`;
    if (value instanceof URL) return `URL ${JSON.stringify(value.href)}`;
    if (value instanceof URLSearchParams) return `URLSearchParams ${JSON.stringify(value.toString())}`;
    if (value instanceof Headers) return `Headers { ${[...value].map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(", ")} }`;
    if (value instanceof Request) return `Request { method: ${JSON.stringify(value.method)}, url: ${JSON.stringify(value.url)} }`;
    if (value instanceof Response) return `Response { status: ${value.status} }`;
    if (value instanceof Promise) return "Promise { ... }";
    const proto = Object.getPrototypeOf(value);
    const name = proto === null ? "[Object: null prototype] " : proto === Object.prototype ? "" : `${(proto.constructor && proto.constructor.name) || "Object"} `;
    const keys = Object.keys(value);
    const entries = keys.slice(0, 100).map((k) => `${IDENTIFIER.test(k) ? k : JSON.stringify(k)}: ${inner(value[k])}`);
    if (keys.length > 100) entries.push(`... ${keys.length - 100} more properties`);
    return entries.length ? `${name}{ ${entries.join(", ")} }` : `${name}{}`;
  } catch {
    return "[Uninspectable]";
  } finally {
    seen.delete(value);
  }
}

function formatArgs(args) {
  const parts = [];
  let rest = args;
  if (typeof args[0] === "string" && args.length > 1 && args[0].includes("%")) {
    let i = 1;
    const first = args[0].replace(/%([sdifjoOc%])/g, (all, spec) => {
      if (spec === "%") return "%";
      if (i >= args.length) return all;
      const v = args[i++];
      switch (spec) {
        case "s":
          return typeof v === "string" ? v : inspect(v, 1);
        case "d":
        case "i":
          return typeof v === "bigint" ? `${v}n` : String(spec === "i" ? parseInt(v, 10) : Number(v));
        case "f":
          return String(parseFloat(v));
        case "j":
          try {
            return JSON.stringify(v);
          } catch {
            return "[Circular]";
          }
        case "c":
          return "";
        default:
          return inspect(v, 1);
      }
    });
    parts.push(first);
    rest = args.slice(i);
  } else if (args.length) {
    parts.push(inspect(args[0]));
    rest = args.slice(1);
  }
  for (const v of rest) parts.push(inspect(v));
  const text = parts.join(" ");
  return text.length > MAX_MESSAGE ? text.slice(0, MAX_MESSAGE) : text;
}

// The host writes at most RATE lines a second per function: lines beyond it are counted
// here and not sent (a flood would keep the host busy), and the count sent with
// flushDropped (the host writes the "N console lines dropped" line).
const RATE = 100;
let logWindow = { start: 0, count: 0, dropped: 0 };

function flushDropped(invocation = current) {
  if (logWindow.dropped > 0) {
    host.log(null, null, invocation, logWindow.dropped);
    logWindow.dropped = 0;
  }
}

function send(level, text, invocation) {
  const now = Date.now();
  if (now - logWindow.start >= 1000) {
    flushDropped(invocation);
    logWindow = { start: now, count: 0, dropped: 0 };
  }
  if (logWindow.count >= RATE) {
    if (++logWindow.dropped >= 1000) flushDropped(invocation);
    return;
  }
  logWindow.count++;
  host.log(level, text, invocation, 0);
}

function emit(level, args, invocation = current) {
  if (logWindow.count >= RATE && Date.now() - logWindow.start < 1000) {
    // not even formatted; counted to the host now and then (a loop may never end normally)
    if (++logWindow.dropped >= 1000) flushDropped(invocation);
    return;
  }
  send(level, formatArgs(args), invocation);
}

function reportUncaught(error, invocation = current) {
  const text = error instanceof Error ? errorText(error) : inspect(error, 1);
  send("error", `Uncaught ${text}`.slice(0, MAX_MESSAGE), invocation);
}

const console = {
  log: (...args) => emit("log", args),
  info: (...args) => emit("info", args),
  warn: (...args) => emit("warn", args),
  error: (...args) => emit("error", args),
  debug: (...args) => emit("debug", args),
  trace: (...args) => emit("debug", args),
  dir: (value) => emit("log", [inspect(value, 1)]),
  assert: (condition, ...args) => {
    if (!condition) emit("error", ["Assertion failed" + (args.length ? ":" : ""), ...args]);
  },
};

// Timers: id -> {fn, args, invocation, every (ms, for an interval; else -1)}
let timerSeq = 0;
const timers = new Map();

function delay(ms) {
  const n = Number(ms);
  return Number.isFinite(n) ? Math.min(Math.max(0, Math.floor(n)), 2147483647) : 0;
}

const MAX_TIMERS = 10000;

function armTimer(fn, ms, args, every) {
  if (typeof fn !== "function") throw new TypeError("The callback must be a function");
  if (timers.size >= MAX_TIMERS) throw new RangeError(`Too many timers pending (at most ${MAX_TIMERS})`);
  const id = ++timerSeq;
  timers.set(id, { fn, args, invocation: current, every });
  host.timer(id, delay(ms), current);
  return id;
}

function disarmTimer(id) {
  if (timers.delete(id)) host.clearTimer(id);
}

const setTimeout = (fn, ms, ...args) => armTimer(fn, ms, args, -1);
const setInterval = (fn, ms, ...args) => armTimer(fn, ms, args, delay(ms));
const clearTimeout = (id) => disarmTimer(id);
const clearInterval = (id) => disarmTimer(id);

function fire(id) {
  const timer = timers.get(id);
  if (!timer) return;
  current = timer.invocation;
  if (timer.every >= 0) host.timer(id, timer.every, timer.invocation);
  else timers.delete(id);
  try {
    timer.fn(...timer.args);
  } catch (error) {
    reportUncaught(error);
  }
}

function queueMicrotask(callback) {
  if (typeof callback !== "function") throw new TypeError("The callback must be a function");
  const invocation = current;
  Promise.resolve().then(callback).catch((error) => reportUncaught(error, invocation));
}

// crypto: random bytes come from the host in blocks
let randomPool = new Uint8Array(0);
let randomUsed = 0;

function randomBytes(n) {
  if (n > 4096) return new Uint8Array(host.random(n));
  if (randomUsed + n > randomPool.length) {
    randomPool = new Uint8Array(host.random(4096));
    randomUsed = 0;
  }
  const out = randomPool.slice(randomUsed, randomUsed + n);
  randomPool.fill(0, randomUsed, randomUsed + n);
  randomUsed += n;
  return out;
}

const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array];

const crypto = {
  getRandomValues(array) {
    if (!INTEGER_ARRAYS.some((T) => array instanceof T)) {
      throw new DOMException("getRandomValues: the argument must be an integer typed array", "TypeMismatchError");
    }
    if (array.byteLength > 65536) {
      throw new DOMException("getRandomValues: at most 65536 bytes at a time", "QuotaExceededError");
    }
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(randomBytes(array.byteLength));
    return array;
  },
  randomUUID() {
    const b = randomBytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  },
};

const ERROR_TYPES = [EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError];
const PLATFORM_TYPES = [Headers, Request, Response, URL, URLSearchParams, TextEncoder, TextDecoder, Promise, WeakMap, WeakSet];

function cloneValue(value, memo) {
  if (typeof value === "function" || typeof value === "symbol") {
    throw new DOMException(`${String(value).slice(0, 50)} could not be cloned.`, "DataCloneError");
  }
  if (typeof value !== "object" || value === null) return value;
  if (memo.has(value)) return memo.get(value);
  let out;
  if (Array.isArray(value)) {
    out = new Array(value.length);
    memo.set(value, out);
    for (const k of Object.keys(value)) out[k] = cloneValue(value[k], memo);
    return out;
  }
  if (value instanceof Map) {
    out = new Map();
    memo.set(value, out);
    for (const [k, v] of value) out.set(cloneValue(k, memo), cloneValue(v, memo));
    return out;
  }
  if (value instanceof Set) {
    out = new Set();
    memo.set(value, out);
    for (const v of value) out.add(cloneValue(v, memo));
    return out;
  }
  if (value instanceof Date) out = new Date(value.getTime());
  else if (value instanceof RegExp) out = new RegExp(value.source, value.flags);
  else if (value instanceof ArrayBuffer) out = value.slice(0);
  else if (ArrayBuffer.isView(value)) {
    const buffer = cloneValue(value.buffer, memo);
    out = value instanceof DataView
      ? new DataView(buffer, value.byteOffset, value.byteLength)
      : new value.constructor(buffer, value.byteOffset, value.length);
  } else if (value instanceof Error) {
    const Type = ERROR_TYPES.find((T) => value instanceof T) || Error;
    out = new Type(value.message);
    if (typeof value.stack === "string") out.stack = value.stack;
  } else if (value instanceof Boolean || value instanceof Number || value instanceof String) {
    out = Object(value.valueOf());
  } else if (PLATFORM_TYPES.some((T) => value instanceof T)) {
    throw new DOMException(`${Object.prototype.toString.call(value)} could not be cloned.`, "DataCloneError");
  } else {
    out = {};
    memo.set(value, out);
    for (const k of Object.keys(value)) out[k] = cloneValue(value[k], memo);
    return out;
  }
  memo.set(value, out);
  return out;
}

function structuredClone(value, options) {
  if (options && options.transfer && options.transfer.length) {
    throw new DOMException("structuredClone: transfer is not supported", "DataCloneError");
  }
  return cloneValue(value, new Map());
}
