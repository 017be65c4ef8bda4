// The edge functions runtime of a node: users' request handlers, one V8 isolate per function
// version (isolated-vm), behind a unix-socket HTTP listener for nginx, driven by the agent on
// an admin socket.
//
//   node --no-node-snapshot runtime.mjs --listen SOCK [--listen-group GID] --admin SOCK
//     --console-log FILE [--config FILE]
//
// SIGTERM (or SIGINT): stop accepting, let the requests in flight finish (at most 5 s), exit 0.

import fs from "node:fs";
import { parseArgs } from "node:util";

import { createAdminServer } from "./lib/admin.mjs";
import { ConsoleLog } from "./lib/consolelog.mjs";
import { Geo } from "./lib/geo.mjs";
import { listenUnix } from "./lib/listen.mjs";
import { outboundFetch } from "./lib/outbound.mjs";
import { Registry } from "./lib/registry.mjs";
import { createFunctionServer } from "./lib/serve.mjs";

const DRAIN_MS = 5000;

function options() {
  const { values } = parseArgs({
    options: {
      listen: { type: "string" },
      "listen-group": { type: "string" },
      admin: { type: "string" },
      "console-log": { type: "string" },
      config: { type: "string" },
    },
    strict: true,
  });
  for (const name of ["listen", "admin", "console-log"]) {
    if (!values[name]) throw new Error(`--${name} is required`);
  }
  return values;
}

async function loadConfigFile(registry, path) {
  let text;
  try {
    text = fs.readFileSync(path, "utf8");
  } catch (error) {
    if (error.code === "ENOENT") return;
    throw error;
  }
  const answer = await registry.load(JSON.parse(text));
  const failed = Object.entries(answer.functions).filter(([, r]) => !r.ok);
  for (const [id, result] of failed) process.stderr.write(`function ${id} did not load: ${result.error}\n`);
  if (answer.geoip_error) process.stderr.write(`${answer.geoip_error}\n`);
}

async function main() {
  const args = options();
  const runtime = {
    settings: { fetch_socket: null, geoip_db: null, allow_private_fetch: false },
    console: new ConsoleLog(args["console-log"]),
    geo: new Geo(),
    registry: null,
    stopping: false,
    inflight: 0,
  };
  runtime.outbound = (request, opts) =>
    outboundFetch(request, { ...opts, fetchSocket: runtime.settings.fetch_socket, allowPrivate: runtime.settings.allow_private_fetch });
  runtime.registry = new Registry(runtime);
  await runtime.console.open();
  if (args.config) {
    try {
      await loadConfigFile(runtime.registry, args.config);
    } catch (error) {
      process.stderr.write(`the config ${args.config} was not loaded: ${error.message}\n`);
    }
  }
  const admin = createAdminServer(runtime);
  const server = createFunctionServer(runtime);
  await listenUnix(admin, args.admin, 0o600);
  // nginx's workers, when they run as another user, connect as members of the group given
  const group = args["listen-group"] === undefined ? null : Number(args["listen-group"]);
  if (group !== null && !Number.isInteger(group)) throw new Error("--listen-group: a group id");
  await listenUnix(server, args.listen, group === null ? 0o600 : 0o660, group);

  const stop = async () => {
    if (runtime.stopping) return;
    runtime.stopping = true;
    server.close();
    admin.close();
    server.closeIdleConnections();
    const deadline = Date.now() + DRAIN_MS;
    while (runtime.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    runtime.registry.dispose();
    await runtime.console.close();
    // a moment for isolated-vm to finish disposing on its threads (exiting during that
    // can crash)
    setTimeout(() => process.exit(0), 100);
  };
  // a bug of ours in one request's promise chain: say so, and keep serving the others
  process.on("unhandledRejection", (reason) => {
    process.stderr.write(`unhandled rejection: ${(reason && reason.stack) || reason}\n`);
  });
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdout.write(`edgeplane function runtime listening on ${args.listen} (admin ${args.admin})\n`);
}

main().catch((error) => {
  process.stderr.write(`edgeplane function runtime: ${error.stack || error}\n`);
  process.exit(1);
});
