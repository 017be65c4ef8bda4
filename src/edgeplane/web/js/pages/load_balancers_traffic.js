// A load balancer's traffic: the requests each backend answered over time and their share
// beside the share its weights ask for, the requests and upstream time of the domains served
// through it, and the pool's health over time (metrics series).
import { html, useState, useApi, Card, ErrorBox, fmtDuration, Notice, LineChart, BarList, Select, fmtPct } from "../ui.js";
import { backendKey } from "./load_balancers_common.js";

const SINCE = [["15m", "Last 15 minutes"], ["1h", "Last hour"], ["6h", "Last 6 hours"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"]];

function toSeries(answer, keep) {
  if (!answer) return [];
  return answer.results
    .filter((r) => !keep || keep.includes(r.object))
    .map((r) => ({ name: r.object, points: r.points.map((p) => [p.at, p.value]) }));
}

// What the weights ask for: each primary in rotation gets weight / sum of weights; backups
// only while every primary is down.
export function weightShares(lb) {
  const live = lb.backends.filter((b) => b.state === "active" && !b.backup);
  const total = live.reduce((s, b) => s + b.weight, 0);
  return lb.backends.map((b) => ({
    name: backendKey(b),
    value: total && live.includes(b) ? b.weight / total : 0,
  }));
}

// What the edge measured: each backend's share of the requests answered in the answer's range.
export function measuredShares(lb, answer) {
  const counts = {};
  for (const r of (answer && answer.results) || []) counts[r.object] = r.points.reduce((s, p) => s + p.value, 0);
  const keys = lb.backends.map(backendKey);
  const total = keys.reduce((s, k) => s + (counts[k] || 0), 0);
  return { total, items: keys.map((k) => ({ name: k, value: total ? (counts[k] || 0) / total : 0 })) };
}

export function Traffic({ lb, project }) {
  const [since, setSince] = useState("1h");
  const every = 30000;
  const domains = lb.domains;
  const served = domains.length > 0;
  const requests = useApi(served ? "metrics" : null, { query: { series: "requests", group_by: "domain", since }, every });
  const upstream = useApi(served ? "metrics" : null, { query: { series: "upstream_time_p95_ms", group_by: "domain", since }, every });
  const up = useApi("metrics", { query: { series: "origin_up", pool: `lb.${project}.${lb.id}`, since }, every });
  const answered = useApi(served ? "metrics" : null, { query: { series: "backend_requests", since }, every });
  const keys = lb.backends.map(backendKey);
  const measured = measuredShares(lb, answered.data);
  return html`<${Card} title="Traffic distribution" id="lb-traffic" wide
      actions=${html`<${Select} label="Time range" name="since" inline value=${since} onValue=${setSince} options=${SINCE} />`}>
    <div class="lb-traffic">
      <div>
        <h3>Requests per backend</h3>
        ${served
          ? html`<${ErrorBox} error=${answered.error} />
              <${LineChart} label=${`Requests each backend answered per ${fmtDuration(answered.data ? answered.data.step : 60)}`} series=${toSeries(answered.data, keys)} />`
          : html`<p class="muted">No traffic goes through this load balancer.</p>`}
      </div>
      <div>
        <h3>Share of requests</h3>
        <p class="hint">Answered: what the edge measured over the range. By weight: what the weights ask for primaries in rotation (backups take traffic only while every primary is down).</p>
        ${lb.backends.length
          ? html`${served && measured.total > 0 &&
              html`<h4>Answered (${measured.total} request${measured.total === 1 ? "" : "s"})</h4>
                <${BarList} label="Share of requests answered" items=${measured.items} format=${(v) => fmtPct(v)} />`}
              <h4>By weight</h4>
              <${BarList} label="Share of requests by weight" items=${weightShares(lb)} format=${(v) => fmtPct(v)} />`
          : html`<p class="muted">No backend.</p>`}
      </div>
      <div>
        <h3>Pool health over time</h3>
        <${ErrorBox} error=${up.error} />
        <${LineChart} label="Backends up (1 = at least one up)" unit="" series=${toSeries(up.data)} />
      </div>
      <div>
        <h3>Requests through it</h3>
        ${served
          ? html`<${ErrorBox} error=${requests.error} />
              <${LineChart} label=${`Requests per ${fmtDuration(requests.data ? requests.data.step : 60)}, per domain`} series=${toSeries(requests.data, domains)} />`
          : html`<${Notice}>The edge serves no domain through this load balancer: it is not the project's CDN origin, or the project has other load balancers.<//>`}
      </div>
      ${served &&
      html`<div>
        <h3>Upstream time (p95)</h3>
        <${ErrorBox} error=${upstream.error} />
        <${LineChart} label="Upstream time p95, per domain" unit="ms" series=${toSeries(upstream.data, domains)} />
      </div>`}
    </div>
  <//>`;
}
