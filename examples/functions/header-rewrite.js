// Header rewrite: the request goes to the origin (through the edge's cache) without the
// client's cookies, and the answer comes back with security headers added and the origin's
// own server banner removed.
export default {
  async fetch(request) {
    const upstream = new Request(request);
    upstream.headers.delete("cookie");
    upstream.headers.set("x-edge-function", "header-rewrite");
    const answer = await fetch(upstream);
    const response = new Response(answer.body, answer);
    response.headers.delete("server");
    response.headers.set("x-content-type-options", "nosniff");
    response.headers.set("referrer-policy", "strict-origin-when-cross-origin");
    return response;
  },
};
