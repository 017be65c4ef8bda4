// Prelude: Request and Response, with buffered bodies (text(), json(), arrayBuffer(),
// bytes(), clone(); `body` is a one-chunk stream-like object, not a full ReadableStream).

const INTERNAL = Symbol("edgeplane internal"); // init key only the prelude can name

// A body: {text} or {bytes} (never both), immutable once made, shared by clones.
function extractBody(init) {
  if (init === undefined || init === null) return { data: null, type: null };
  if (typeof init === "string") return { data: { text: init }, type: "text/plain;charset=UTF-8" };
  if (init instanceof ArrayBuffer || ArrayBuffer.isView(init)) {
    return { data: { bytes: toBytes(init, "body").slice() }, type: null };
  }
  if (init instanceof URLSearchParams) {
    return { data: { text: init.toString() }, type: "application/x-www-form-urlencoded;charset=UTF-8" };
  }
  if (init instanceof BodyStream) return { data: takeStream(init), type: null };
  return { data: { text: String(init) }, type: "text/plain;charset=UTF-8" };
}

const bodyBytes = (data) => (data === null ? new Uint8Array(0) : data.bytes ?? utf8Encode(data.text));
const bodyText = (data) => (data === null ? "" : data.text ?? utf8Decode(data.bytes));
// what crosses to the host: a string, an ArrayBuffer or null
const bodyForHost = (data) =>
  data === null ? null : data.text ?? data.bytes.buffer.slice(data.bytes.byteOffset, data.bytes.byteOffset + data.bytes.byteLength);

let takeData; // (holder) -> data, marks the body used (TypeError if it was)
let peekData; // (holder) -> data, for clones
let takeStream; // (stream) -> its holder's data, marks it used

class BodyStream {
  #holder;
  #locked = false;
  constructor(holder) {
    this.#holder = holder;
  }
  static {
    takeStream = (stream) => takeData(stream.#holder);
  }
  get locked() {
    return this.#locked;
  }
  getReader() {
    if (this.#locked) throw new TypeError("The body stream is locked to a reader");
    this.#locked = true;
    let done = false;
    const holder = this.#holder;
    return {
      read: async () => {
        if (done) return { done: true, value: undefined };
        done = true;
        return { done: false, value: bodyBytes(takeData(holder)).slice() };
      },
      releaseLock: () => {
        this.#locked = false;
      },
      cancel: async () => {
        done = true;
      },
      closed: Promise.resolve(undefined),
    };
  }
  async *[Symbol.asyncIterator]() {
    const reader = this.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  }
}

class BodyHolder {
  #data;
  #used = false;
  #stream = null;

  constructor(data) {
    this.#data = data;
  }
  static {
    takeData = (holder) => {
      if (holder.#used) throw new TypeError("Body has already been used");
      if (holder.#data !== null) holder.#used = true;
      return holder.#data;
    };
    peekData = (holder) => holder.#data;
  }
  get bodyUsed() {
    return this.#used;
  }
  get body() {
    if (this.#data === null) return null;
    if (this.#stream === null) this.#stream = new BodyStream(this);
    return this.#stream;
  }
  async text() {
    return bodyText(takeData(this));
  }
  async json() {
    return JSON.parse(bodyText(takeData(this)));
  }
  async arrayBuffer() {
    return bodyBytes(takeData(this)).slice().buffer;
  }
  async bytes() {
    return bodyBytes(takeData(this)).slice();
  }
  async blob() {
    throw new TypeError("Blob bodies are not supported: use arrayBuffer()");
  }
  async formData() {
    throw new TypeError("formData() is not supported: use text() with URLSearchParams");
  }
}

const NORMALIZED_METHODS = new Set(["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"]);
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);
const REDIRECT_MODES = new Set(["follow", "manual", "error"]);
const NO_GEO = Object.freeze({ country: null, continent: null, city: null, latitude: null, longitude: null });

function normalizeMethod(method) {
  const m = String(method);
  if (!HEADER_NAME.test(m)) throw new TypeError(`Invalid HTTP method: "${m.slice(0, 50)}"`);
  const upper = m.toUpperCase();
  if (FORBIDDEN_METHODS.has(upper)) throw new TypeError(`HTTP method ${upper} is not allowed`);
  return NORMALIZED_METHODS.has(upper) ? upper : m;
}

let requestForHost; // (request) -> {method, url, headers, body, redirect}

class Request extends BodyHolder {
  #method;
  #url;
  #headers;
  #redirect;
  #geo;
  #ip;

  constructor(input, init) {
    const options = init === undefined || init === null ? {} : init;
    const internal = options[INTERNAL];
    const source = input instanceof Request ? input : null;
    let data = null;
    let type = null;
    if (internal) {
      data = internal.data;
    } else if (options.body !== undefined && options.body !== null) {
      ({ data, type } = extractBody(options.body));
    } else if (options.body === undefined && source !== null) {
      if (source.bodyUsed) throw new TypeError("Cannot construct a Request from a Request whose body was used");
      data = takeData(source);
    }
    super(data);
    // the host built the URL of an incoming request (or of a clone) with its own URL parser
    this.#url = internal ? String(input) : source !== null ? source.url : new URL(input).href;
    if (internal) this.#method = String(options.method);
    else if (options.method !== undefined) this.#method = normalizeMethod(options.method);
    else this.#method = source !== null ? source.method : "GET";
    this.#headers = new Headers(options.headers !== undefined ? options.headers : source !== null ? source.headers : undefined);
    if (!internal && data !== null && (this.#method === "GET" || this.#method === "HEAD")) {
      throw new TypeError("Request with GET/HEAD method cannot have body.");
    }
    if (type !== null && !this.#headers.has("content-type")) this.#headers.set("content-type", type);
    const redirect = options.redirect !== undefined ? String(options.redirect) : source !== null ? source.redirect : "follow";
    if (!REDIRECT_MODES.has(redirect)) throw new TypeError(`Invalid redirect mode: "${redirect}"`);
    this.#redirect = redirect;
    this.#geo = internal ? Object.freeze({ ...NO_GEO, ...internal.geo }) : source !== null ? source.geo : NO_GEO;
    this.#ip = internal ? internal.ip : source !== null ? source.ip : null;
  }

  static {
    requestForHost = (request) => ({
      method: request.#method,
      url: request.#url,
      headers: headerPairs(request.#headers),
      body: bodyForHost(takeData(request)),
      redirect: request.#redirect,
    });
  }

  get method() {
    return this.#method;
  }
  get url() {
    return this.#url;
  }
  get headers() {
    return this.#headers;
  }
  get redirect() {
    return this.#redirect;
  }
  get geo() {
    return this.#geo;
  }
  get cf() {
    return this.#geo;
  }
  get ip() {
    return this.#ip;
  }
  clone() {
    if (this.bodyUsed) throw new TypeError("Cannot clone a Request whose body was used");
    return new Request(this.#url, {
      method: this.#method,
      headers: this.#headers,
      redirect: this.#redirect,
      [INTERNAL]: { data: peekData(this), geo: this.#geo, ip: this.#ip },
    });
  }
  get [Symbol.toStringTag]() {
    return "Request";
  }
}

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

let responseForHost; // (response) -> {status, statusText, headers, body}

class Response extends BodyHolder {
  #status;
  #statusText;
  #headers;
  #url = "";
  #redirected = false;

  constructor(body = null, init) {
    const options = init === undefined || init === null ? {} : init;
    const internal = options[INTERNAL];
    const { data, type } = internal ? { data: internal.data, type: null } : extractBody(body);
    super(data);
    const status = options.status === undefined ? 200 : Number(options.status);
    if (!internal && !(Number.isInteger(status) && status >= 200 && status <= 599)) {
      throw new RangeError(`Response status must be an integer from 200 to 599, not ${options.status}`);
    }
    const statusText = options.statusText === undefined ? "" : String(options.statusText);
    if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(statusText)) throw new TypeError("Invalid statusText");
    if (!internal && data !== null && NULL_BODY_STATUSES.has(status)) {
      throw new TypeError(`Response with null body status ${status} cannot have a body`);
    }
    this.#status = status;
    this.#statusText = statusText;
    this.#headers = new Headers(options.headers);
    if (type !== null && !this.#headers.has("content-type")) this.#headers.set("content-type", type);
    if (internal) {
      this.#url = internal.url || "";
      this.#redirected = Boolean(internal.redirected);
    }
  }

  static {
    responseForHost = (response) => ({
      status: response.#status,
      statusText: response.#statusText,
      headers: headerPairs(response.#headers),
      body: bodyForHost(takeData(response)),
    });
  }

  static json(data, init) {
    const text = JSON.stringify(data);
    if (text === undefined) throw new TypeError("Response.json: the value cannot be serialized as JSON");
    const options = init === undefined || init === null ? {} : init;
    const headers = new Headers(options.headers);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    return new Response(text, { status: options.status, statusText: options.statusText, headers });
  }
  static redirect(url, status = 302) {
    if (!REDIRECT_STATUSES.has(status)) throw new RangeError(`Invalid redirect status: ${status}`);
    return new Response(null, { status, headers: { location: new URL(url).href } });
  }

  get status() {
    return this.#status;
  }
  get statusText() {
    return this.#statusText;
  }
  get ok() {
    return this.#status >= 200 && this.#status <= 299;
  }
  get headers() {
    return this.#headers;
  }
  get url() {
    return this.#url;
  }
  get redirected() {
    return this.#redirected;
  }
  get type() {
    return "default";
  }
  clone() {
    if (this.bodyUsed) throw new TypeError("Cannot clone a Response whose body was used");
    return new Response(null, {
      status: this.#status,
      statusText: this.#statusText,
      headers: this.#headers,
      [INTERNAL]: { data: peekData(this), url: this.#url, redirected: this.#redirected },
    });
  }
  get [Symbol.toStringTag]() {
    return "Response";
  }
}
