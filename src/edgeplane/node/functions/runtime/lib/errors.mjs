// Why a module could not be loaded, with the line and column (1-based) in the user's source
// when there is one: syntax errors, top-level exceptions, imports, a missing handler.

export const MODULE_FILE = "worker.js"; // the name the user's module carries in stacks

export const MISSING_HANDLER = "the module must export default { fetch(request, env, ctx) }";

export class LoadError extends Error {
  constructor(message, line = null, column = null) {
    super(message);
    this.line = line;
    this.column = column;
  }

  // "SyntaxError: Unexpected token '}' at 3:1"
  describe() {
    return this.line === null ? this.message : `${this.message} at ${this.line}:${this.column}`;
  }
}

const SUFFIX = new RegExp(`\\s*\\[${MODULE_FILE.replace(".", "\\.")}:(\\d+):(\\d+)\\]$`);
const FRAME = new RegExp(`${MODULE_FILE.replace(".", "\\.")}:(\\d+):(\\d+)`);

// A LoadError from what compiling or evaluating the module threw (an Error crossing from
// the isolate, or any value the top level threw).
export function loadError(thrown, { timeoutMs, memoryMb }) {
  if (!(thrown instanceof Error)) {
    return new LoadError(`Uncaught ${typeof thrown === "string" ? JSON.stringify(thrown) : String(thrown)}`);
  }
  const text = thrown.message || "";
  if (text.startsWith("Script execution timed out")) {
    return new LoadError(`the module's top level did not finish within ${timeoutMs} ms`);
  }
  if (text.includes("disposed") && text.includes("memory limit")) {
    return new LoadError(`the module's top level exceeded the memory limit (${memoryMb} MB)`);
  }
  const suffix = SUFFIX.exec(text);
  if (suffix) {
    return new LoadError(`${thrown.name}: ${text.replace(SUFFIX, "")}`, Number(suffix[1]), Number(suffix[2]));
  }
  const frame = FRAME.exec(thrown.stack || "");
  return new LoadError(`${thrown.name}: ${text}`, frame ? Number(frame[1]) : null, frame ? Number(frame[2]) : null);
}

// Where `specifier` is named in `code` (for "imports are not supported").
export function importError(code, specifier) {
  const message = `imports are not supported (import "${specifier}")`;
  for (const quote of ['"', "'", "`"]) {
    const at = code.indexOf(`${quote}${specifier}${quote}`);
    if (at >= 0) {
      const before = code.slice(0, at).split("\n");
      return new LoadError(message, before.length, before[before.length - 1].length + 1);
    }
  }
  return new LoadError(message);
}
