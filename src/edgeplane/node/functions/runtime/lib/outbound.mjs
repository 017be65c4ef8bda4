// The requests functions make with fetch(): to a host of their own project through the
// node's internal socket (with the invocation's client address, scheme and request id), to
// any other host directly, refusing private destinations (checked on the addresses actually
// connected to) unless the node allows them. Redirects followed (at most 10, each hop
// checked again) unless the request says "manual" or "error"; bodies buffered and decoded.

import http from "node:http";
import https from "node:https";
import net from "node:net";
import zlib from "node:zlib";

import { RefusedDestination, forbiddenReason, guardedLookup } from "./netguard.mjs";

export const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// never sent as the function gives them: the host sets them, or they are per connection
const DROPPED = new Set([
  "host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
  "upgrade", "content-length", "x-real-ip", "x-forwarded-proto", "x-edge-request-id",
]);
const PER_CONNECTION = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"]);
const DECODERS = {
  gzip: () => zlib.createGunzip(),
  "x-gzip": () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

const publicAgents = {
  "http:": new http.Agent({ keepAlive: true, maxSockets: 256 }),
  "https:": new https.Agent({ keepAlive: true, maxSockets: 256 }),
};
const socketAgents = new Map(); // internal socket path -> Agent

function socketAgent(path) {
  let agent = socketAgents.get(path);
  if (!agent) {
    agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    socketAgents.set(path, agent);
  }
  return agent;
}

function headerObject(pairs) {
  const out = {};
  for (const [name, value] of pairs) {
    if (out[name] === undefined) out[name] = value;
    else out[name] = [].concat(out[name], value);
  }
  return out;
}

// The response, buffered (decoded when its content-encoding is one we know).
function collect(response, method, maxBytes) {
  return new Promise((resolve, reject) => {
    const status = response.statusCode;
    const noBody = method === "HEAD" || status === 204 || status === 304;
    const encoding = String(response.headers["content-encoding"] || "").trim().toLowerCase();
    const decode = !noBody && DECODERS[encoding] ? DECODERS[encoding] : null;
    const headers = [];
    const raw = response.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toLowerCase();
      if (PER_CONNECTION.has(name)) continue;
      if (decode && (name === "content-encoding" || name === "content-length")) continue;
      headers.push([name, raw[i + 1]]);
    }
    const done = (body) =>
      resolve({ status, statusText: response.statusMessage || "", headers, body, url: "", redirected: false });
    if (noBody) {
      response.resume();
      response.on("end", () => done(null));
      response.on("error", reject);
      return;
    }
    const stream = decode ? response.pipe(decode()) : response;
    const chunks = [];
    let size = 0;
    stream.on("data", (chunk) => {
      size += chunk.length;
      if (size > maxBytes) {
        response.destroy();
        stream.destroy();
        reject(new Error(`fetch: the response body exceeds ${Math.floor(maxBytes / 1048576)} MiB`));
        return;
      }
      chunks.push(chunk);
    });
    stream.on("end", () => {
      const body = Buffer.concat(chunks);
      done(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
    });
    stream.on("error", (error) => reject(new Error(`fetch: the response could not be read: ${error.message}`)));
    response.on("error", reject);
  });
}

function once(url, method, headers, body, options) {
  return new Promise((resolve, reject) => {
    const scheme = url.protocol.slice(0, -1);
    const own = options.ownHosts.has(url.hostname.toLowerCase().replace(/\.$/, ""));
    const pairs = headers.slice();
    if (!pairs.some(([name]) => name === "accept-encoding")) pairs.push(["accept-encoding", "gzip, deflate, br"]);
    if (body !== null) pairs.push(["content-length", String(body.length)]);
    const path = `${url.pathname}${url.search}`;
    let request;
    if (own) {
      if (!options.fetchSocket) {
        reject(new Error(`fetch: ${url.hostname} is a host of this project, and this node has no internal fetch socket`));
        return;
      }
      pairs.push(["host", url.host], ["x-forwarded-proto", scheme], ["x-edge-request-id", options.rid]);
      if (options.clientIp) pairs.push(["x-real-ip", options.clientIp]);
      request = http.request({
        socketPath: options.fetchSocket,
        agent: socketAgent(options.fetchSocket),
        method,
        path,
        headers: headerObject(pairs),
        signal: options.signal,
      });
    } else {
      const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
      const guarded = !options.allowPrivate;
      if (guarded && net.isIP(hostname)) {
        const reason = forbiddenReason(hostname);
        if (reason) {
          reject(new RefusedDestination(url.hostname, hostname, reason));
          return;
        }
      }
      request = (scheme === "https" ? https : http).request({
        protocol: url.protocol,
        hostname,
        port: url.port || undefined,
        method,
        path,
        headers: headerObject(pairs),
        agent: publicAgents[url.protocol],
        lookup: guarded ? guardedLookup : undefined,
        signal: options.signal,
      });
      if (guarded) {
        // the address actually connected to (whatever resolved it)
        request.on("socket", (socket) => {
          const check = () => {
            const reason = socket.remoteAddress ? forbiddenReason(socket.remoteAddress) : null;
            if (reason) request.destroy(new RefusedDestination(url.hostname, socket.remoteAddress, reason));
          };
          if (socket.connecting) socket.once("connect", check);
          else check();
        });
      }
    }
    request.on("response", (response) => collect(response, method, options.maxBytes).then(resolve, reject));
    request.on("error", reject);
    request.end(body ?? undefined);
  });
}

/*
 * `request`: {method, url, headers: [[name, value]], body: string | ArrayBuffer | null,
 * redirect: "follow" | "manual" | "error"} as the isolate sent it (untrusted: checked here).
 * `options`: {ownHosts: Set, fetchSocket, allowPrivate, clientIp, rid, signal, maxBytes}.
 * Answers {status, statusText, headers, body: ArrayBuffer | null, url, redirected}.
 */
export async function outboundFetch(request, options) {
  let url = new URL(String(request.url));
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`fetch: the "${url.protocol.slice(0, -1)}" scheme is not supported (http and https only)`);
  }
  let method = String(request.method);
  let body = null;
  if (typeof request.body === "string") body = Buffer.from(request.body);
  else if (request.body instanceof ArrayBuffer) body = Buffer.from(request.body);
  let headers = (Array.isArray(request.headers) ? request.headers : [])
    .filter((p) => Array.isArray(p) && p.length === 2)
    .map(([name, value]) => [String(name).toLowerCase(), String(value)])
    .filter(([name]) => !DROPPED.has(name) && !name.startsWith("x-edgeplane-"));
  for (let hop = 0; ; hop++) {
    const answer = await once(url, method, headers, body, options);
    answer.url = url.href;
    answer.redirected = hop > 0;
    const location = answer.headers.find(([name]) => name === "location");
    if (request.redirect === "manual" || !REDIRECT_STATUSES.has(answer.status) || !location) return answer;
    if (request.redirect === "error") throw new TypeError(`fetch: redirected to ${location[1]} (redirect: "error")`);
    if (hop >= MAX_REDIRECTS) throw new TypeError(`fetch: too many redirects (more than ${MAX_REDIRECTS})`);
    let next;
    try {
      next = new URL(location[1], url);
    } catch {
      throw new TypeError(`fetch: the redirect location is not a URL: ${location[1].slice(0, 200)}`);
    }
    if (next.protocol !== "http:" && next.protocol !== "https:") {
      throw new TypeError(`fetch: redirected to the unsupported scheme "${next.protocol.slice(0, -1)}"`);
    }
    if (answer.status === 303 ? method !== "HEAD" : answer.status !== 307 && answer.status !== 308 && method === "POST") {
      method = "GET";
      body = null;
      headers = headers.filter(([name]) => !name.startsWith("content-"));
    }
    if (next.origin !== url.origin) {
      headers = headers.filter(([name]) => name !== "authorization" && name !== "proxy-authorization" && name !== "cookie");
    }
    url = next;
  }
}
