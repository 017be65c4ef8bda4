// Prelude: puts the platform on globalThis (and takes away what would let a function block
// its thread without using CPU).

for (const [name, value] of Object.entries({
  DOMException, TextEncoder, TextDecoder, atob, btoa, URL, URLSearchParams, Headers, Request,
  Response, fetch, console, setTimeout, clearTimeout, setInterval, clearInterval,
  queueMicrotask, structuredClone, crypto,
})) {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}
delete Atomics.wait;
delete Atomics.waitAsync;
