// Geolocation redirect: a visitor of the home page is sent to the site of their country,
// by the country the node's GeoIP database gives for the client's address.
const SITES = { GB: "/uk/", US: "/us/", AU: "/au/" };

export default {
  async fetch(request) {
    const country = request.geo.country; // "GB", "US", ... or null when unknown
    const target = SITES[country] || "/intl/";
    const url = new URL(target, request.url);
    return Response.redirect(url.toString(), 302);
  },
};
