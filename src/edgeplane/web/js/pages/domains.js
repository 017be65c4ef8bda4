// The Domain Manager: #/domains lists the project's domains (searched and paged by the API)
// with the form that adds one; #/domains/<name> is one domain (verification, SSL, DNS records,
// DNSSEC, lock, traffic).
import { html } from "../ui.js";
import DomainList from "./domains_list.js";
import DomainPage from "./domains_detail.js";

export default function Domains({ path }) {
  return path && path.length ? html`<${DomainPage} name=${path[0]} />` : html`<${DomainList} />`;
}
