// The agent's HTTP API on the admin socket: PUT /config (load a config), GET /status,
// POST /reopen (the console log, after a rotation).

import http from "node:http";

import { ConfigError } from "./config.mjs";

const MAX_CONFIG = 256 * 1024 * 1024;

function send(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_CONFIG) {
        reject(new ConfigError("the config is too large"));
        req.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (error) {
        reject(new ConfigError(`the config is not JSON: ${error.message}`));
      }
    });
    req.on("error", reject);
  });
}

// `runtime`: {registry, console}
export function createAdminServer(runtime) {
  return http.createServer(async (req, res) => {
    const path = req.url.split("?")[0];
    try {
      if (path === "/config" && req.method === "PUT") {
        send(res, 200, await runtime.registry.load(await readJson(req)));
      } else if (path === "/status" && req.method === "GET") {
        send(res, 200, await runtime.registry.status());
      } else if (path === "/reopen" && req.method === "POST") {
        await runtime.console.reopen();
        send(res, 200, { ok: true });
      } else if (["/config", "/status", "/reopen"].includes(path)) {
        send(res, 405, { error: `${req.method} is not allowed on ${path}` });
      } else {
        send(res, 404, { error: `no such endpoint: ${path}` });
      }
    } catch (error) {
      if (error instanceof ConfigError) send(res, 400, { error: error.message });
      else {
        process.stderr.write(`admin ${req.method} ${path}: ${error.stack || error}\n`);
        send(res, 500, { error: String(error.message || error) });
      }
    }
  });
}
