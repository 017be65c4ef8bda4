// Which addresses a function's outbound fetch may not reach (unless the node allows private
// fetches): unspecified, loopback, private (RFC 1918, fc00::/7), link-local, CGNAT
// (100.64/10), multicast, reserved and broadcast; IPv6 forms that embed an IPv4 address are
// judged by that address. And a dns lookup that refuses names resolving to any of them.

import dns from "node:dns";
import net from "node:net";

const V4_RANGES = [
  ["0.0.0.0", 8, "unspecified"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "carrier-grade NAT"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local"],
  ["172.16.0.0", 12, "private"],
  ["192.168.0.0", 16, "private"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved or broadcast"],
].map(([base, bits, what]) => [v4Number(base), bits, what]);

function v4Number(address) {
  return address.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

function v4Reason(n) {
  for (const [base, bits, what] of V4_RANGES) {
    const size = 2 ** (32 - bits);
    if (n >= base && n < base + size) return what;
  }
  return null;
}

// 16 bytes of an IPv6 address (as net.isIPv6 accepts it; no zone), or null.
export function ipv6Bytes(address) {
  if (!net.isIPv6(address)) return null;
  let text = address.split("%")[0];
  const bytes = new Uint8Array(16);
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tail = [];
  if (dotted) {
    const n = v4Number(dotted[1]);
    tail = [(n >>> 16) & 0xffff, n & 0xffff];
    text = text.slice(0, -dotted[1].length) + "0:0";
  }
  const [head, rest] = text.includes("::") ? text.split("::") : [text, null];
  const left = head ? head.split(":") : [];
  const right = rest ? rest.split(":") : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right].map((g) => parseInt(g || "0", 16));
  if (tail.length) groups.splice(6, 2, ...tail);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

function embeddedV4(bytes, at) {
  return ((bytes[at] << 24) >>> 0) + (bytes[at + 1] << 16) + (bytes[at + 2] << 8) + bytes[at + 3];
}

// Why `address` may not be fetched ("loopback", "private", ...), or null when it may.
export function forbiddenReason(address) {
  if (net.isIPv4(address)) return v4Reason(v4Number(address));
  const b = ipv6Bytes(address);
  if (b === null) return "not an IP address";
  const zeros = (from, to) => b.slice(from, to).every((x) => x === 0);
  if (zeros(0, 16)) return "unspecified";
  if (zeros(0, 15) && b[15] === 1) return "loopback";
  if ((b[0] & 0xfe) === 0xfc) return "private";
  if (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) return "link-local";
  if (b[0] === 0xfe && (b[1] & 0xc0) === 0xc0) return "site-local";
  if (b[0] === 0xff) return "multicast";
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4Reason(embeddedV4(b, 12)); // ::ffff:a.b.c.d
  if (zeros(0, 12)) return v4Reason(embeddedV4(b, 12)) || "IPv4-compatible"; // ::a.b.c.d
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(4, 12)) return v4Reason(embeddedV4(b, 12)); // NAT64
  if (b[0] === 0x20 && b[1] === 0x02) return v4Reason(embeddedV4(b, 2)); // 6to4
  return null;
}

export class RefusedDestination extends Error {
  constructor(host, address, reason) {
    const article = /^[aeiou]/.test(reason) ? "an" : "a";
    super(`fetch to ${host} refused: ${address} is ${article} ${reason} address (functions may only fetch public addresses)`);
    this.code = "EDGEPLANE_REFUSED";
  }
}

// A `lookup` for http.request: resolves like dns.lookup, and fails when any address the
// name resolves to is forbidden.
export function guardedLookup(hostname, options, callback) {
  dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) {
      callback(error);
      return;
    }
    for (const { address } of addresses) {
      const reason = forbiddenReason(address);
      if (reason) {
        callback(new RefusedDestination(hostname, address, reason));
        return;
      }
    }
    if (options.all) callback(null, addresses);
    else callback(null, addresses[0].address, addresses[0].family);
  });
}
