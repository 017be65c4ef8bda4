// Prelude: URL (parsed and modified by the host's own WHATWG URL, through synchronous
// host calls) and URLSearchParams (application/x-www-form-urlencoded, in JavaScript).

const toUSV = (value) => String(value).toWellFormed();

function formEncode(value) {
  return encodeURIComponent(toUSV(value))
    .replace(/%20/g, "+")
    .replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

function isHex(byte) {
  return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

function formDecode(value) {
  const bytes = utf8Encode(value.replace(/\+/g, " "));
  const out = new Uint8Array(bytes.length);
  let p = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x25 && i + 2 < bytes.length && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      out[p++] = parseInt(String.fromCharCode(bytes[i + 1], bytes[i + 2]), 16);
      i += 2;
    } else {
      out[p++] = b;
    }
  }
  return utf8Decode(out.subarray(0, p), false, true);
}

function parseQuery(query) {
  const list = [];
  for (const part of query.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? "" : part.slice(eq + 1);
    list.push([formDecode(name), formDecode(value)]);
  }
  return list;
}

let replaceParamsList; // (params, list): the URL's search changed
let attachParams; // (params, url): params belongs to url
let setSearchFromParams; // (url, serialized): params changed

class URLSearchParams {
  #list = [];
  #url = null;

  constructor(init = "") {
    if (init instanceof URLSearchParams) {
      this.#list = init.#list.map(([k, v]) => [k, v]);
    } else if ((typeof init === "object" && init !== null) || typeof init === "function") {
      if (typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const p = Array.from(pair);
          if (p.length !== 2) throw new TypeError("URLSearchParams: each pair must have exactly two items");
          this.#list.push([toUSV(p[0]), toUSV(p[1])]);
        }
      } else {
        for (const key of Object.keys(init)) this.#list.push([toUSV(key), toUSV(init[key])]);
      }
    } else {
      const s = toUSV(init);
      this.#list = parseQuery(s.startsWith("?") ? s.slice(1) : s);
    }
  }

  static {
    replaceParamsList = (params, list) => {
      params.#list = list;
    };
    attachParams = (params, url) => {
      params.#url = url;
    };
  }

  #update() {
    if (this.#url !== null) setSearchFromParams(this.#url, this.toString());
  }

  get size() {
    return this.#list.length;
  }
  append(name, value) {
    this.#list.push([toUSV(name), toUSV(value)]);
    this.#update();
  }
  delete(name, value) {
    const n = toUSV(name);
    const v = value === undefined ? undefined : toUSV(value);
    this.#list = this.#list.filter(([k, x]) => !(k === n && (v === undefined || x === v)));
    this.#update();
  }
  get(name) {
    const n = toUSV(name);
    const hit = this.#list.find(([k]) => k === n);
    return hit ? hit[1] : null;
  }
  getAll(name) {
    const n = toUSV(name);
    return this.#list.filter(([k]) => k === n).map(([, v]) => v);
  }
  has(name, value) {
    const n = toUSV(name);
    const v = value === undefined ? undefined : toUSV(value);
    return this.#list.some(([k, x]) => k === n && (v === undefined || x === v));
  }
  set(name, value) {
    const n = toUSV(name);
    const v = toUSV(value);
    const i = this.#list.findIndex(([k]) => k === n);
    if (i < 0) {
      this.#list.push([n, v]);
    } else {
      this.#list[i] = [n, v];
      this.#list = this.#list.filter(([k], j) => j <= i || k !== n);
    }
    this.#update();
  }
  sort() {
    // stable, by UTF-16 code units (Array.prototype.sort is stable)
    this.#list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    this.#update();
  }
  toString() {
    return this.#list.map(([k, v]) => `${formEncode(k)}=${formEncode(v)}`).join("&");
  }
  entries() {
    return this.#list.map(([k, v]) => [k, v])[Symbol.iterator]();
  }
  keys() {
    return this.#list.map(([k]) => k)[Symbol.iterator]();
  }
  values() {
    return this.#list.map(([, v]) => v)[Symbol.iterator]();
  }
  forEach(callback, thisArg) {
    for (const [k, v] of this.#list.slice()) callback.call(thisArg, v, k, this);
  }
  [Symbol.iterator]() {
    return this.entries();
  }
  get [Symbol.toStringTag]() {
    return "URLSearchParams";
  }
}

// the parts the host returns, in this order
const HREF = 0, ORIGIN = 1, PROTOCOL = 2, USERNAME = 3, PASSWORD = 4, HOST = 5,
  HOSTNAME = 6, PORT = 7, PATHNAME = 8, SEARCH = 9, HASH = 10;

// Parsing is a host call (a thread hop): the last results are kept, and the host gives the
// parts of each request's URL with the request.
const URL_CACHE_SIZE = 256;
const urlCache = new Map(); // input + "\0" + base -> parts or null

function rememberUrl(key, parts) {
  if (urlCache.size >= URL_CACHE_SIZE) urlCache.delete(urlCache.keys().next().value);
  urlCache.set(key, parts);
}

function parseUrl(input, base) {
  const text = toUSV(input);
  const baseText = base === undefined ? undefined : toUSV(base);
  const key = baseText === undefined ? `${text}\0` : `${text}\0${baseText}`;
  let parts = urlCache.get(key);
  if (parts === undefined) {
    parts = host.urlParse(text, baseText);
    rememberUrl(key, parts);
  }
  return parts;
}

class URL {
  #parts;
  #params = null;

  constructor(url, base) {
    if (arguments.length === 0) throw new TypeError("URL: 1 argument required");
    const parts = parseUrl(url, base);
    if (parts === null) throw new TypeError(`Invalid URL: ${String(url).slice(0, 200)}`);
    this.#parts = parts;
  }

  static canParse(url, base) {
    return parseUrl(url, base) !== null;
  }

  static {
    setSearchFromParams = (url, serialized) => {
      url.#parts = host.urlSet(url.#parts[HREF], "search", serialized);
    };
  }

  #set(name, value) {
    this.#parts = host.urlSet(this.#parts[HREF], name, toUSV(value));
    if (name === "search" && this.#params !== null) {
      replaceParamsList(this.#params, parseQuery(this.#parts[SEARCH].slice(1)));
    }
  }

  get href() {
    return this.#parts[HREF];
  }
  set href(value) {
    const parts = parseUrl(value);
    if (parts === null) throw new TypeError(`Invalid URL: ${String(value).slice(0, 200)}`);
    this.#parts = parts;
    if (this.#params !== null) replaceParamsList(this.#params, parseQuery(parts[SEARCH].slice(1)));
  }
  get origin() {
    return this.#parts[ORIGIN];
  }
  get protocol() {
    return this.#parts[PROTOCOL];
  }
  set protocol(v) {
    this.#set("protocol", v);
  }
  get username() {
    return this.#parts[USERNAME];
  }
  set username(v) {
    this.#set("username", v);
  }
  get password() {
    return this.#parts[PASSWORD];
  }
  set password(v) {
    this.#set("password", v);
  }
  get host() {
    return this.#parts[HOST];
  }
  set host(v) {
    this.#set("host", v);
  }
  get hostname() {
    return this.#parts[HOSTNAME];
  }
  set hostname(v) {
    this.#set("hostname", v);
  }
  get port() {
    return this.#parts[PORT];
  }
  set port(v) {
    this.#set("port", v);
  }
  get pathname() {
    return this.#parts[PATHNAME];
  }
  set pathname(v) {
    this.#set("pathname", v);
  }
  get search() {
    return this.#parts[SEARCH];
  }
  set search(v) {
    this.#set("search", v);
  }
  get hash() {
    return this.#parts[HASH];
  }
  set hash(v) {
    this.#set("hash", v);
  }
  get searchParams() {
    if (this.#params === null) {
      this.#params = new URLSearchParams(this.#parts[SEARCH]);
      attachParams(this.#params, this);
    }
    return this.#params;
  }
  toString() {
    return this.#parts[HREF];
  }
  toJSON() {
    return this.#parts[HREF];
  }
  get [Symbol.toStringTag]() {
    return "URL";
  }
}
