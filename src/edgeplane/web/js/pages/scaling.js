// Scaling (#/scaling): the project's scaling groups, each backing a load balancer with
// instances its driver makes, and the form that creates one; #/scaling/<id> is one group (its
// details, instances and history, refreshed while open; size, bounds, resume, delete).
import { html } from "../ui.js";
import ScalingList from "./scaling_list.js";
import ScalingGroup from "./scaling_detail.js";

export default function Scaling({ path, query }) {
  if (path && path.length) return html`<${ScalingGroup} id=${path[0]} />`;
  return html`<${ScalingList} query=${query} />`;
}
