// A domain's traffic over time from GET /metrics (series requests, bandwidth_bytes, hit_ratio,
// errors_4xx and errors_5xx, selected by domain): line charts and the totals of the range.
import {
  html, useState, useApi, Card, Grid, ErrorBox, Select, LineChart, Stat, fmtNum, fmtBytes, toMs,
} from "../ui.js";

const RANGES = [["1h", "Last hour"], ["6h", "Last 6 hours"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"]];

function useSeries(name, domain, since) {
  return useApi("metrics", { query: { series: name, domain, since }, every: 30000 });
}

function points(answer) {
  if (!answer || !answer.results.length) return [];
  return answer.results[0].points.map((p) => [p.at, p.value]);
}

const total = (pts) => pts.reduce((sum, [, v]) => sum + Number(v), 0);

// 1xx-3xx per step: requests minus the 4xx and 5xx of the same step.
function others(requests, e4, e5) {
  const bad = new Map();
  for (const [t, v] of [...e4, ...e5]) bad.set(toMs(t), (bad.get(toMs(t)) || 0) + Number(v));
  return requests.map(([t, v]) => [t, Math.max(0, Number(v) - (bad.get(toMs(t)) || 0))]);
}

export default function Traffic({ name }) {
  const [since, setSince] = useState("1h");
  const requests = useSeries("requests", name, since);
  const bandwidth = useSeries("bandwidth_bytes", name, since);
  const hits = useSeries("hit_ratio", name, since);
  const e4 = useSeries("errors_4xx", name, since);
  const e5 = useSeries("errors_5xx", name, since);
  const error = requests.error || bandwidth.error || hits.error || e4.error || e5.error;
  const req = points(requests.data), bw = points(bandwidth.data), hr = points(hits.data);
  const p4 = points(e4.data), p5 = points(e5.data);
  const requestTotal = total(req);
  const hitMean = hr.length ? total(hr) / hr.length : null;
  return html`<${Card} title="Traffic" id="traffic" wide
      actions=${html`<${Select} label="Range" name="traffic-range" inline value=${since} onValue=${setSince} options=${RANGES} />`}>
    <${ErrorBox} error=${error} />
    <div class="stats">
      <${Stat} label="Requests" value=${fmtNum(requestTotal)} />
      <${Stat} label="Bandwidth" value=${fmtBytes(total(bw))} />
      <${Stat} label="Cache hit ratio (mean)" value=${hitMean === null ? "—" : `${hitMean.toFixed(1)} %`} />
      <${Stat} label="4xx" value=${fmtNum(total(p4))} />
      <${Stat} label="5xx" value=${fmtNum(total(p5))} kind=${total(p5) ? "bad" : ""} />
    </div>
    <${Grid}>
      <div><h3>Requests</h3><${LineChart} label="Requests" series=${[{ name: "requests", points: req }]} unit="req" /></div>
      <div><h3>Bandwidth</h3><${LineChart} label="Bandwidth" series=${[{ name: "bytes sent", points: bw }]} format=${fmtBytes} /></div>
      <div><h3>Cache hit ratio</h3><${LineChart} label="Cache hit ratio" series=${[{ name: "hit ratio", points: hr }]} unit="%" /></div>
      <div><h3>Status classes</h3><${LineChart} label="Status classes" unit="req"
        series=${[{ name: "1xx-3xx", points: others(req, p4, p5) }, { name: "4xx", points: p4 }, { name: "5xx", points: p5 }]} /></div>
    </${Grid}>
  <//>`;
}
