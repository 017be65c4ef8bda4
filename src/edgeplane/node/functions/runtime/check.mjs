// Checks a function's module for the control plane: the source on stdin, compiled and its
// top level evaluated in an isolate (64 MB, 1000 ms) as the runtime would load it, default.fetch
// required. Prints one JSON line, {"ok": true} or {"ok": false, "line", "column", "message"};
// exits 0 either way (non-zero only when the check itself could not run).
//
//   node --no-node-snapshot check.mjs < worker.js

import { LoadError } from "./lib/errors.mjs";
import { Instance } from "./lib/instance.mjs";

const MEMORY_MB = 64;
const TIMEOUT_MS = 1000;

// the module's top level has no invocation: it logs nowhere and its timers and fetches never run
const owner = {
  log() {},
  respond() {},
  waitDone() {},
  timer() {},
  clearTimer() {},
  fetch() {},
  entryFailed() {},
};

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

async function main() {
  const code = await readStdin();
  let result = { ok: true };
  try {
    const instance = await Instance.create({ code, env: {}, memoryMb: MEMORY_MB, evalTimeoutMs: TIMEOUT_MS }, owner, (message) => {
      throw new Error(message);
    });
    instance.dispose();
  } catch (error) {
    if (!(error instanceof LoadError)) throw error;
    result = { ok: false, line: error.line, column: error.column, message: error.message };
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

// No process.exit() right after an isolate was lost to its memory limit: isolated-vm may
// still be tearing it down on another thread, and exiting then can crash (seen: SIGSEGV).
main().then(
  () => {
    process.exitCode = 0;
  },
  (error) => {
    process.stderr.write(`check: ${error.stack || error}\n`);
    process.exitCode = 2;
  },
);
