// Security (#/security): the project's protections at the edge: the under-attack switch and
// the WAF (settings, exclusions, recent matches with the false-positive workflow). A viewer
// sees it all; every write control is disabled for them.
import { html, Page, useSession } from "../ui.js";
import UnderAttackCard from "./security_attack.js";
import WafCard from "./security_waf.js";

export default function SecurityPage() {
  const { project } = useSession();
  return html`<${Page} title="Security" subtitle=${`Under-attack mode and WAF of project ${project}`}>
    <${UnderAttackCard} />
    <${WafCard} />
  <//>`;
}
