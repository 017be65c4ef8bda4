// The dashboard's pages: the first segment of the location's hash chooses one; each is a module
// of pages/ loaded when first shown, whose default export receives {path} (the segments after
// the first: #/domains/shop.example.com -> path ["shop.example.com"]).
export const ROUTES = [
  { key: "", title: "Overview", module: "overview" },
  { key: "domains", title: "Domains", module: "domains" },
  { key: "certificates", title: "SSL certificates", module: "certificates" },
  { key: "cdn", title: "CDN", module: "cdn" },
  { key: "security", title: "Security", module: "security" },
  { key: "load-balancers", title: "Load balancers", module: "load_balancers" },
  { key: "scaling", title: "Scaling", module: "scaling" },
  { key: "functions", title: "Functions", module: "functions" },
  { key: "map", title: "Global map", module: "map" },
  { key: "inventory", title: "Inventory", module: "inventory" },
  { key: "alerts", title: "Alerts", module: "alerts" },
  { key: "audit", title: "Audit log", module: "audit" },
  { key: "access", title: "Access", module: "access" },
];
