// A/B test by cookie: each visitor is put in group A or B once (a cookie remembers it), and
// group B gets the new landing page from the origin. The answer says which group served it.
export default {
  async fetch(request, env) {
    const cookie = request.headers.get("cookie") || "";
    const known = /(?:^|;\s*)ab=(A|B)(?:;|$)/.exec(cookie);
    const group = known ? known[1] : Math.random() < Number(env.B_SHARE || "0.5") ? "B" : "A";
    const url = new URL(request.url);
    if (group === "B") url.pathname = "/b" + url.pathname;
    const answer = await fetch(new Request(url, request));
    const response = new Response(answer.body, answer);
    response.headers.set("x-ab-group", group);
    if (!known) response.headers.append("set-cookie", `ab=${group}; Path=/; Max-Age=2592000`);
    return response;
  },
};
