// The prelude's source: the files of ../prelude, in order, inside one function that the host
// calls once per isolate with the version's env and the host callbacks, and that returns the
// entry points (dispatch, settle, fire, forget, setHandler).

import { readFileSync } from "node:fs";

export const PRELUDE_FILE = "edgeplane:prelude"; // the name its stack frames carry

const FILES = ["encoding.js", "url.js", "headers.js", "body.js", "globals.js", "fetch.js", "dispatch.js", "install.js"];

// The host callbacks, in the order the host passes them after env.
export const HOST_CALLBACKS = ["log", "waitDone", "urlParse", "urlSet", "random", "timer", "clearTimer", "fetch"];

function build() {
  const dir = new URL("../prelude/", import.meta.url);
  const body = FILES.map((name) => readFileSync(new URL(name, dir), "utf8")).join("\n");
  return `(function (env, ${HOST_CALLBACKS.map((n) => `host_${n}`).join(", ")}) {
"use strict";
const host = { ${HOST_CALLBACKS.map((n) => `${n}: host_${n}`).join(", ")} };
${body}
return { dispatch, settle, fire, forget, setHandler };
})`;
}

export const PRELUDE_SOURCE = build();
