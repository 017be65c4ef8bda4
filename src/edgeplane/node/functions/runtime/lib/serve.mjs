// The requests nginx sends (X-Edgeplane-Function: <project>/<name>, Host, X-Real-IP,
// X-Forwarded-Proto, X-Edge-Request-Id, then the client's own headers and body): read, handed
// to the function's version, and answered with X-Edgeplane-Function-Outcome and
// X-Edge-Function.

import { randomUUID } from "node:crypto";
import http from "node:http";
import net from "node:net";

import { urlParts } from "./urlparts.mjs";

export const MAX_BODY = 1024 * 1024;
const DRAIN_LIMIT = 16 * MAX_BODY;
export const OUTCOME_HEADER = "x-edgeplane-function-outcome";
export const FUNCTION_HEADER = "x-edge-function";

// what the function does not see of nginx's request
const HIDDEN = new Set(["x-real-ip", "x-forwarded-proto", "x-edge-request-id", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"]);
// what the runtime does not pass on of the function's response
const NOT_PASSED = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length", FUNCTION_HEADER]);
const WITHOUT_BODY = (status) => status < 200 || status === 204 || status === 304;

const ERROR_TEXT = {
  exception: "the function failed (an uncaught exception, or it did not return a Response)",
  timeout: "the function exceeded its time limit",
  memory: "the function exceeded its memory limit",
  unavailable: "no function is loaded for this route on this node",
  too_large: "the request body exceeds 1 MiB",
  bad_request: "the request has no valid Host",
};

function requestId(value) {
  return typeof value === "string" && /^[A-Za-z0-9._:-]{1,128}$/.test(value) ? value : randomUUID().replaceAll("-", "");
}

function clientHeaders(raw) {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (!HIDDEN.has(name) && !name.startsWith("x-edgeplane-")) out.push([raw[i], raw[i + 1]]);
  }
  return out;
}

function requestUrl(req) {
  const proto = req.headers["x-forwarded-proto"] === "https" ? "https" : "http";
  const host = req.headers.host;
  if (!host || !req.url.startsWith("/")) return null;
  try {
    return new URL(`${proto}://${host}${req.url}`);
  } catch {
    return null;
  }
}

// The body, null when empty, or false when over MAX_BODY. An oversized body is still read
// (up to DRAIN_LIMIT) before the 413: a connection closed on unread data is reset, and the
// peer may then lose the answer.
function readBody(req) {
  return new Promise((resolve, reject) => {
    if (Number(req.headers["content-length"]) > DRAIN_LIMIT) {
      resolve(false);
      return;
    }
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > DRAIN_LIMIT) req.destroy();
      else if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on("end", () => resolve(size > MAX_BODY ? false : size ? Buffer.concat(chunks) : null));
    req.on("close", () => {
      if (!req.complete) reject(new Error("the request was not received whole"));
    });
    req.on("error", reject);
  });
}

// `res.closeConnection`: answer with Connection: close (stopping, or a body left unread)
function writeError(res, status, outcome, rid, label, why = outcome) {
  const text = `${status} ${outcome}: ${ERROR_TEXT[why]} (request ${rid})\n`;
  const headers = ["content-type", "text/plain; charset=utf-8", "content-length", String(Buffer.byteLength(text)), OUTCOME_HEADER, outcome];
  if (label) headers.push(FUNCTION_HEADER, label);
  if (res.closeConnection) headers.push("connection", "close");
  res.writeHead(status, headers);
  res.end(text);
}

function writeAnswer(res, version, outcome, answer, rid) {
  if (res.headersSent || res.destroyed) return;
  const label = version.label;
  if (outcome !== "ok") {
    const status = outcome === "exception" ? 500 : 503;
    writeError(res, status, outcome, rid, label);
    return;
  }
  const headers = [];
  for (const [name, value] of answer.headers) {
    const lower = name.toLowerCase();
    if (!NOT_PASSED.has(lower) && !lower.startsWith("x-edgeplane-")) headers.push(name, value);
  }
  const body = WITHOUT_BODY(answer.status) ? null : answer.body ?? Buffer.alloc(0);
  if (body !== null) headers.push("content-length", String(body.length));
  headers.push(OUTCOME_HEADER, "ok", FUNCTION_HEADER, label);
  if (res.closeConnection) headers.push("connection", "close");
  try {
    res.writeHead(answer.status, answer.statusText || undefined, headers);
  } catch (error) {
    version.errors++;
    version.logLine("error", `exception: the response could not be sent: ${error.message}`, rid);
    writeError(res, 500, "exception", rid, label);
    return;
  }
  res.end(body ?? undefined);
}

// The listener's request handler. `runtime`: {registry, geo, stopping, inflight}.
export function functionHandler(runtime) {
  return async (req, res) => {
    const started = performance.now();
    runtime.inflight++;
    res.once("close", () => runtime.inflight--);
    res.closeConnection = runtime.stopping;
    const rid = requestId(req.headers["x-edge-request-id"]);
    const version = runtime.registry.byKey.get(req.headers["x-edgeplane-function"]);
    if (version === undefined) {
      writeError(res, 503, "unavailable", rid, null);
      return;
    }
    let body;
    try {
      body = await readBody(req);
    } catch {
      res.destroy();
      return;
    }
    if (body === false) {
      res.closeConnection = !req.complete;
      writeError(res, 413, "ok", rid, version.label, "too_large");
      return;
    }
    const url = requestUrl(req);
    if (url === null) {
      writeError(res, 400, "ok", rid, version.label, "bad_request");
      return;
    }
    const realIp = req.headers["x-real-ip"];
    const ip = typeof realIp === "string" && net.isIP(realIp) ? realIp : null;
    const incoming = {
      method: req.method,
      url: url.href,
      urlParts: urlParts(url), // saves the function a host call for new URL(request.url)
      headers: clientHeaders(req.rawHeaders),
      ip,
      geo: runtime.geo.lookup(ip),
    };
    const bytes = body === null ? null : body.buffer.slice(body.byteOffset, body.byteOffset + body.length);
    version
      .invoke(incoming, bytes, { rid, ip, started }, (outcome, answer) => writeAnswer(res, version, outcome, answer, rid))
      .catch((error) => {
        process.stderr.write(`invocation of ${version.spec.id}: ${error.stack || error}\n`);
        if (!res.headersSent) writeError(res, 500, "exception", rid, version.label);
      });
  };
}

export function createFunctionServer(runtime) {
  return http.createServer(
    { keepAliveTimeout: 75_000, headersTimeout: 20_000, requestTimeout: 120_000, maxHeaderSize: 65536 },
    functionHandler(runtime),
  );
}
