// CDN configuration (#/cdn): the project's origin and the domains it serves, the cache rules in
// the order they are tried, purges with every edge node's completion, analytics over time and
// the cost estimator.
import { html, Page, ErrorBox, Loading, useApi, useSession } from "../ui.js";
import { CDN } from "./cdn_common.js";
import ConfigCard from "./cdn_config.js";
import RulesCard from "./cdn_rules.js";
import PurgeCard from "./cdn_purge.js";
import AnalyticsCard from "./cdn_analytics.js";
import CostCard from "./cdn_costs.js";

export default function CdnPage() {
  const { project } = useSession();
  const state = useApi(`${CDN}/state`);
  const rules = useApi(`${CDN}/rules`);
  const reload = () => {
    state.reload();
    rules.reload();
  };
  return html`<${Page} title="CDN" subtitle=${`Origin, cache rules, purges, analytics and costs of project ${project}`}>
    <${ErrorBox} error=${state.error || rules.error} />
    ${state.data === undefined
      ? html`<${Loading} what="the CDN config" />`
      : html`<${ConfigCard} state=${state.data} onChanged=${reload} />
          <${RulesCard} rules=${rules.data} onChanged=${reload} />`}
    <${PurgeCard} />
    <${AnalyticsCard} />
    <${CostCard} />
  <//>`;
}
