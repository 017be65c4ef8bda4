// Load balancers: #/load-balancers lists them and creates one; #/load-balancers/<id> shows one
// (backends, health per edge node, algorithm and failover, health check, traffic).
import { html } from "../ui.js";
import LoadBalancerList from "./load_balancers_list.js";
import LoadBalancerDetail from "./load_balancers_detail.js";

export default function LoadBalancers({ path }) {
  if (path && path.length) return html`<${LoadBalancerDetail} id=${path[0]} />`;
  return html`<${LoadBalancerList} />`;
}
