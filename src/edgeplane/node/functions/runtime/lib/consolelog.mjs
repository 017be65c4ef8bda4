// The functions' console: JSON lines appended to one file ({"t", "fn", "v", "level", "msg",
// "rid"}), at most RATE lines per second per function (then one "N console lines dropped"
// line when the second ends; the runtime's own lines, such as a time limit's, are never
// dropped); reopen() after a rotation.

import fs from "node:fs";

export const RATE = 100;
export const MAX_MESSAGE = 2048;
export const LEVELS = new Set(["log", "info", "warn", "error", "debug"]);

export class ConsoleLog {
  constructor(path) {
    this.path = path;
    this.windows = new Map(); // fn key -> its current second: {start, count, dropped, version, timer}
    this.stream = null;
  }

  async open() {
    const stream = fs.createWriteStream(this.path, { flags: "a", mode: 0o640 });
    stream.on("error", (error) => process.stderr.write(`console log ${this.path}: ${error.message}\n`));
    await new Promise((resolve) => {
      stream.once("open", resolve);
      stream.once("error", resolve);
    });
    this.stream = stream;
  }

  async reopen() {
    const old = this.stream;
    await this.open();
    if (old) old.end();
  }

  async close() {
    const stream = this.stream;
    for (const window of this.windows.values()) clearTimeout(window.timer);
    if (stream) await new Promise((resolve) => stream.end(resolve));
  }

  #line(key, version, level, msg, rid) {
    const record = { t: new Date().toISOString(), fn: key, v: version, level, msg, rid };
    if (this.stream) this.stream.write(JSON.stringify(record) + "\n");
  }

  #window(key, version, now) {
    let window = this.windows.get(key);
    if (window === undefined || now - window.start >= 1000) {
      if (window !== undefined) this.#flush(key, window);
      window = { start: now, count: 0, dropped: 0, version, timer: null };
      this.windows.set(key, window);
    }
    return window;
  }

  // `n` lines of function `key` dropped before they got here (the isolate counts its own).
  dropped(key, version, n) {
    if (n <= 0) return;
    const now = Date.now();
    const window = this.#window(key, version, now);
    this.#drop(key, window, version, now, n);
  }

  #drop(key, window, version, now, n) {
    window.dropped += n;
    window.version = version;
    if (window.timer === null) {
      window.timer = setTimeout(() => this.#flush(key, window), 1000 - (now - window.start));
      window.timer.unref();
    }
  }

  // One line of function `key` at `version` (its message truncated, its level checked);
  // `capped` false for the runtime's own lines about the function (at most one a request).
  write(key, version, level, message, rid = null, capped = true) {
    const now = Date.now();
    const window = this.#window(key, version, now);
    if (capped && window.count >= RATE) {
      this.#drop(key, window, version, now, 1);
      return;
    }
    window.count++;
    const msg = String(message);
    this.#line(key, version, LEVELS.has(level) ? level : "log", msg.length > MAX_MESSAGE ? msg.slice(0, MAX_MESSAGE) : msg, rid);
  }

  #flush(key, window) {
    clearTimeout(window.timer);
    window.timer = null;
    if (window.dropped > 0) {
      this.#line(key, window.version, "warn", `${window.dropped} console lines dropped`, null);
      window.dropped = 0;
    }
  }
}
