// A JSON API answered at the edge: GET /api/time tells the time and where the request was
// answered from; POST /api/echo sends back the JSON body it got. Nothing reaches the origin.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method === "GET" && url.pathname === "/api/time") {
      return Response.json({
        now: new Date().toISOString(),
        country: request.geo.country,
        region: env.REGION_LABEL || null,
      });
    }
    if (request.method === "POST" && url.pathname === "/api/echo") {
      let body;
      try {
        body = await request.json();
      } catch {
        return Response.json({ error: "the body must be JSON" }, { status: 400 });
      }
      return Response.json({ received: body });
    }
    return Response.json({ error: `no route for ${request.method} ${url.pathname}` }, { status: 404 });
  },
};
