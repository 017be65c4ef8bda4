// Prelude: Headers (names case-insensitive; values of a name joined by ", " except
// Set-Cookie, whose values stay separate: getSetCookie() and iteration give each one).

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function headerName(name) {
  const n = String(name);
  if (!HEADER_NAME.test(n)) throw new TypeError(`Invalid header name: "${n.slice(0, 100)}"`);
  return n.toLowerCase();
}

function headerValue(value) {
  const v = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
  if (/[\0\r\n]/.test(v)) throw new TypeError("Invalid header value: it contains NUL, CR or LF");
  return v;
}

let headerPairs; // (headers) -> [[name, value], ...] as iteration gives them

class Headers {
  #map = new Map(); // lower-case name -> [values]

  static {
    headerPairs = (headers) => headers.#pairs();
  }

  constructor(init) {
    if (init === undefined || init === null) return;
    if (init instanceof Headers) {
      for (const [name, values] of init.#map) this.#map.set(name, values.slice());
    } else if (typeof init === "object" || typeof init === "function") {
      if (typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const p = Array.from(pair);
          if (p.length !== 2) throw new TypeError("Headers: each header pair must have exactly two items");
          this.append(p[0], p[1]);
        }
      } else {
        for (const key of Object.keys(init)) this.append(key, init[key]);
      }
    } else {
      throw new TypeError("Headers: the init must be an object, an array of pairs or a Headers");
    }
  }

  append(name, value) {
    const n = headerName(name);
    const v = headerValue(value);
    const values = this.#map.get(n);
    if (values) values.push(v);
    else this.#map.set(n, [v]);
  }
  set(name, value) {
    this.#map.set(headerName(name), [headerValue(value)]);
  }
  get(name) {
    const values = this.#map.get(headerName(name));
    return values ? values.join(", ") : null;
  }
  getSetCookie() {
    return (this.#map.get("set-cookie") || []).slice();
  }
  has(name) {
    return this.#map.has(headerName(name));
  }
  delete(name) {
    this.#map.delete(headerName(name));
  }
  #pairs() {
    const out = [];
    for (const name of [...this.#map.keys()].sort()) {
      const values = this.#map.get(name);
      if (name === "set-cookie") for (const v of values) out.push([name, v]);
      else out.push([name, values.join(", ")]);
    }
    return out;
  }
  entries() {
    return this.#pairs()[Symbol.iterator]();
  }
  keys() {
    return this.#pairs().map(([k]) => k)[Symbol.iterator]();
  }
  values() {
    return this.#pairs().map(([, v]) => v)[Symbol.iterator]();
  }
  forEach(callback, thisArg) {
    for (const [k, v] of this.#pairs()) callback.call(thisArg, v, k, this);
  }
  [Symbol.iterator]() {
    return this.entries();
  }
  get [Symbol.toStringTag]() {
    return "Headers";
  }
}
