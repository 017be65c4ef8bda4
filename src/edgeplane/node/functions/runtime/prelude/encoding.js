// Prelude (runs inside each function's isolate): DOMException, UTF-8 (TextEncoder,
// TextDecoder and the helpers the bodies use), atob and btoa. Pure JavaScript: no host call.

class DOMException extends Error {
  constructor(message = "", name = "Error") {
    super(String(message));
    Object.defineProperty(this, "name", { value: String(name), configurable: true, writable: true });
  }
}

function utf8Encode(input) {
  const s = String(input);
  const out = new Uint8Array(s.length * 3);
  let p = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[p++] = c;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      } else {
        c = 0xfffd; // a lone surrogate
      }
    }
    if (c < 0x800) {
      out[p++] = 0xc0 | (c >> 6);
      out[p++] = 0x80 | (c & 0x3f);
    } else if (c < 0x10000) {
      out[p++] = 0xe0 | (c >> 12);
      out[p++] = 0x80 | ((c >> 6) & 0x3f);
      out[p++] = 0x80 | (c & 0x3f);
    } else {
      out[p++] = 0xf0 | (c >> 18);
      out[p++] = 0x80 | ((c >> 12) & 0x3f);
      out[p++] = 0x80 | ((c >> 6) & 0x3f);
      out[p++] = 0x80 | (c & 0x3f);
    }
  }
  return out.slice(0, p);
}

// The WHATWG UTF-8 decoder: each maximal invalid subpart becomes one U+FFFD (or, with
// `fatal`, a TypeError); a leading BOM is dropped unless `keepBom`.
function utf8Decode(bytes, fatal = false, keepBom = false) {
  const b = bytes;
  const n = b.length;
  let i = !keepBom && n >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
  let out = "";
  let units = [];
  const bad = () => {
    if (fatal) throw new TypeError("The encoded data was not valid UTF-8");
    units.push(0xfffd);
  };
  while (i < n) {
    const c = b[i];
    if (c < 0x80) {
      units.push(c);
      i++;
    } else {
      let need, cp;
      let lower = 0x80;
      let upper = 0xbf;
      if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
        cp = c & 0x1f;
      } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        cp = c & 0x0f;
        if (c === 0xe0) lower = 0xa0;
        if (c === 0xed) upper = 0x9f;
      } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        cp = c & 0x07;
        if (c === 0xf0) lower = 0x90;
        if (c === 0xf4) upper = 0x8f;
      } else {
        bad();
        i++;
        continue;
      }
      let j = i + 1;
      let ok = true;
      for (let k = 0; k < need; k++, j++) {
        const d = j < n ? b[j] : -1;
        if (d < lower || d > upper) {
          ok = false;
          break;
        }
        lower = 0x80;
        upper = 0xbf;
        cp = (cp << 6) | (d & 0x3f);
      }
      i = j;
      if (!ok) {
        bad();
        continue;
      }
      if (cp >= 0x10000) {
        cp -= 0x10000;
        units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
      } else {
        units.push(cp);
      }
    }
    if (units.length >= 8192) {
      out += String.fromCharCode.apply(null, units);
      units = [];
    }
  }
  return out + String.fromCharCode.apply(null, units);
}

function toBytes(source, what) {
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) {
    return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  }
  if (typeof SharedArrayBuffer === "function" && source instanceof SharedArrayBuffer) {
    return new Uint8Array(source);
  }
  throw new TypeError(`${what}: expected an ArrayBuffer or a typed array`);
}

const UTF8_LABELS = new Set(["utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"]);

class TextEncoder {
  get encoding() {
    return "utf-8";
  }
  encode(input = "") {
    return utf8Encode(input);
  }
  encodeInto(input, dest) {
    const bytes = utf8Encode(input);
    // whole characters only: cut before a lead byte
    let n = Math.min(bytes.length, dest.length);
    if (n < bytes.length) while (n > 0 && (bytes[n] & 0xc0) === 0x80) n--;
    dest.set(bytes.subarray(0, n));
    const read = utf8Decode(bytes.subarray(0, n), false, true).length;
    return { read, written: n };
  }
  get [Symbol.toStringTag]() {
    return "TextEncoder";
  }
}

class TextDecoder {
  #fatal;
  #ignoreBOM;
  constructor(label = "utf-8", options = {}) {
    if (!UTF8_LABELS.has(String(label).trim().toLowerCase())) {
      throw new RangeError(`TextDecoder: the encoding "${label}" is not supported (utf-8 only)`);
    }
    this.#fatal = Boolean(options && options.fatal);
    this.#ignoreBOM = Boolean(options && options.ignoreBOM);
  }
  get encoding() {
    return "utf-8";
  }
  get fatal() {
    return this.#fatal;
  }
  get ignoreBOM() {
    return this.#ignoreBOM;
  }
  decode(input, options) {
    if (options && options.stream) throw new TypeError("TextDecoder: streaming is not supported");
    if (input === undefined) return "";
    return utf8Decode(toBytes(input, "TextDecoder.decode"), this.#fatal, this.#ignoreBOM);
  }
  get [Symbol.toStringTag]() {
    return "TextDecoder";
  }
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Map(Array.from(B64, (ch, i) => [ch, i]));

function btoa(data) {
  if (arguments.length === 0) throw new TypeError("btoa: 1 argument required");
  const s = String(data);
  let out = "";
  for (let i = 0; i < s.length; i += 3) {
    const a = s.charCodeAt(i);
    const b = i + 1 < s.length ? s.charCodeAt(i + 1) : -1;
    const c = i + 2 < s.length ? s.charCodeAt(i + 2) : -1;
    if (a > 0xff || b > 0xff || c > 0xff) {
      throw new DOMException("btoa: the string contains characters outside of Latin1", "InvalidCharacterError");
    }
    const n = (a << 16) | (Math.max(b, 0) << 8) | Math.max(c, 0);
    out += B64[n >> 18] + B64[(n >> 12) & 63];
    out += b < 0 ? "=" : B64[(n >> 6) & 63];
    out += c < 0 ? "=" : B64[n & 63];
  }
  return out;
}

function atob(data) {
  if (arguments.length === 0) throw new TypeError("atob: 1 argument required");
  let s = String(data).replace(/[\t\n\f\r ]/g, "");
  if (s.length % 4 === 0) s = s.replace(/={1,2}$/, "");
  if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) {
    throw new DOMException("atob: the string to be decoded is not correctly encoded", "InvalidCharacterError");
  }
  let out = "";
  let bits = 0;
  let value = 0;
  for (const ch of s) {
    value = (value << 6) | B64_INDEX.get(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((value >> bits) & 0xff);
    }
  }
  return out;
}
