// Security (#/security): the project's protections at the edge and how its domains fare from
// outside: the under-attack switch, the WAF (settings, exclusions, recent matches with the
// false-positive workflow), bot protection, each domain's security score and the compliance
// report with its policy. A viewer sees it all; every write control is disabled for them.
import { html, Page, useSession } from "../ui.js";
import UnderAttackCard from "./security_attack.js";
import WafCard from "./security_waf.js";
import BotsCard from "./security_bots.js";
import ScoreCard from "./security_score.js";
import ComplianceCard from "./security_compliance.js";

export default function SecurityPage() {
  const { project } = useSession();
  return html`<${Page} title="Security" subtitle=${`Under-attack mode, WAF, bots, security scores and compliance of project ${project}`}>
    <${UnderAttackCard} />
    <${WafCard} />
    <${BotsCard} />
    <${ScoreCard} />
    <${ComplianceCard} />
  <//>`;
}
