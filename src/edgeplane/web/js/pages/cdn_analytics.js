// CDN analytics over 1 h / 24 h / 7 d: totals from GET /cdn/analytics (requests, hit ratio,
// bandwidth, status classes, cache statuses, upstream time, per domain) and the series of GET
// /metrics over time (requests and errors, hit ratio, bandwidth, response time), for the project.
import {
  html, useState, useApi, Card, Table, ErrorBox, Loading, LineChart, BarList, Stat,
  fmtNum, fmtBytes, fmtPct, fmtMs,
} from "../ui.js";
import { CDN } from "./cdn_common.js";

const RANGES = [
  // [key, label, timeframe of /cdn/analytics, since and step (s) of /metrics]
  ["1h", "Last hour", "1h", 60],
  ["24h", "Last 24 hours", "24h", 900],
  ["7d", "Last 7 days", "7d", 3600],
];
const STATUS_CLASSES = ["2xx", "3xx", "4xx", "5xx"];
const EVERY = 5000;

// One series of the project over the range. Counts (`zero`) are 0 in the steps with nothing
// measured, which the API leaves out; ratios and times have no value there.
function useSeries(name, since, step, zero = false) {
  const got = useApi("metrics", { query: { series: name, since, step, group_by: "project" }, every: EVERY * 3 });
  const d = got.data;
  let points = d ? d.results.flatMap((r) => r.points.map((p) => [Date.parse(p.at), p.value])) : [];
  if (zero && points.length) {
    const at = new Map(points);
    points = [];
    for (let t = Date.parse(d.start); t < Date.parse(d.end); t += d.step * 1000) points.push([t, at.get(t) || 0]);
  }
  return { name, points, error: got.error };
}

function Charts({ range }) {
  const [, , since, step] = range;
  const requests = useSeries("requests", since, step, true);
  const e4 = useSeries("errors_4xx", since, step, true);
  const e5 = useSeries("errors_5xx", since, step, true);
  const hit = useSeries("hit_ratio", since, step);
  const bytes = useSeries("bandwidth_bytes", since, step, true);
  const p50 = useSeries("response_time_p50_ms", since, step);
  const p95 = useSeries("response_time_p95_ms", since, step);
  const error = [requests, e4, e5, hit, bytes, p50, p95].map((s) => s.error).find(Boolean);
  const named = (s, name) => ({ name, points: s.points });
  return html`<div class="cdn-charts">
    <${ErrorBox} error=${error} title="Series" />
    <div class="cdn-chart-grid">
      <div><h3>Requests</h3>
        <${LineChart} label="Requests per step" series=${[named(requests, "all"), named(e4, "4xx"), named(e5, "5xx")]} /></div>
      <div><h3>Hit ratio</h3>
        <${LineChart} label="Hit ratio, percent" unit="%" series=${[named(hit, "hit ratio")]} /></div>
      <div><h3>Bandwidth</h3>
        <${LineChart} label="Bytes sent to clients per step" format=${fmtBytes} series=${[named(bytes, "bytes out")]} /></div>
      <div><h3>Latency</h3>
        <${LineChart} label="Whole-request time, ms" unit="ms" series=${[named(p50, "p50"), named(p95, "p95")]} /></div>
    </div>
  </div>`;
}

function Totals({ data }) {
  const statuses = STATUS_CLASSES.map((c) => ({ name: c, value: data.statuses[c] || 0 }));
  const others = Object.keys(data.statuses).filter((c) => !STATUS_CLASSES.includes(c));
  others.forEach((c) => statuses.push({ name: c, value: data.statuses[c] }));
  const cache = Object.entries(data.cache).map(([name, value]) => ({ name, value }));
  const up = data.upstream_ms;
  const domainColumns = [
    { key: "domain", label: "Domain" },
    { key: "requests", label: "Requests", class: "num", render: (d) => fmtNum(d.requests) },
    { key: "hit_ratio", label: "Hit ratio", class: "num", render: (d) => fmtPct(d.hit_ratio) },
    { key: "bytes_out", label: "Bandwidth", class: "num", render: (d) => fmtBytes(d.bytes_out) },
    { key: "p95", label: "Upstream p95", class: "num", render: (d) => fmtMs(d.upstream_ms.p95) },
  ];
  return html`<div class="stats cdn-stats" aria-label="Totals">
      <${Stat} label="Requests" value=${fmtNum(data.requests)} />
      <${Stat} label="Hit ratio" value=${fmtPct(data.hit_ratio)} />
      <${Stat} label="Hits / misses" value=${`${fmtNum(data.hits)} / ${fmtNum(data.misses)}`} />
      <${Stat} label="Bandwidth" value=${fmtBytes(data.bytes_out)} />
      <${Stat} label="Upstream p50 / p95 / p99" value=${`${fmtMs(up.p50)} / ${fmtMs(up.p95)} / ${fmtMs(up.p99)}`} />
    </div>
    <div class="grid cdn-breakdown">
      <div><h3>Requests by status class</h3><${BarList} label="Requests by status class" items=${statuses} /></div>
      <div><h3>Cache statuses</h3>
        ${cache.length ? html`<${BarList} label="Responses by cache status" items=${cache} />` : html`<p class="muted">No responses yet.</p>`}</div>
    </div>
    <${Table} columns=${domainColumns} rows=${data.domains} rowKey=${(d) => d.domain} caption="Per domain"
      empty="No traffic in this timeframe." />`;
}

export default function AnalyticsCard() {
  const [key, setKey] = useState("1h");
  const range = RANGES.find((r) => r[0] === key);
  const totals = useApi(`${CDN}/analytics`, { query: { timeframe: range[2] }, every: EVERY });
  const picker = html`<div class="cdn-range" role="group" aria-label="Time range">
    ${RANGES.map(
      ([k, label]) => html`<button type="button" class=${k === key ? "btn small primary" : "btn small"} aria-pressed=${k === key ? "true" : "false"}
        onClick=${() => setKey(k)}>${label}</button>`,
    )}
  </div>`;
  return html`<${Card} title="Analytics" id="cdn-analytics" actions=${picker}>
    <p class="muted">What the edge nodes served for the project's domains; each node reports its per-minute counts every few seconds.</p>
    <${ErrorBox} error=${totals.error} />
    ${totals.data ? html`<${Totals} data=${totals.data} />` : html`<${Loading} what="the analytics" />`}
    <${Charts} key=${key} range=${range} />
  <//>`;
}
