// The parts of a WHATWG URL as the prelude's URL class holds them (see prelude/url.js).

export const urlParts = (u) => [u.href, u.origin, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash];
