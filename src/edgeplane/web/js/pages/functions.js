// Functions (#/functions): the project's edge functions (versioned JavaScript request handlers
// the edge nodes run) and the form that deploys one; #/functions/<name> is one function (its
// current version and rollout, versions with activate and roll back, metrics per region, the
// latest console lines, its code; delete).
import { html } from "../ui.js";
import FunctionList from "./functions_list.js";
import FunctionDetail from "./functions_detail.js";

export default function Functions({ path, query }) {
  if (path && path.length) return html`<${FunctionDetail} name=${path[0]} />`;
  return html`<${FunctionList} query=${query} />`;
}
