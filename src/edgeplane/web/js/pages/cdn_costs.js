// The CDN's costs: this month's measured CDN cost (to date and projected, GET /costs) and the
// estimator: the monthly cost of traffic the user enters, or of the last 30 days' measured
// traffic, computed by the API (POST /costs/estimate) with the prices in force (GET
// /costs/model). An estimate changes nothing, so its form is usable by every role.
import {
  html, useState, useApi, useAction, Card, Table, ErrorBox, Input, Stat, Loading,
  fmtMoney, fmtNum, fmtBytes,
} from "../ui.js";
import { CDN, errorAt, unshown, numberOrText, useProjectApi } from "./cdn_common.js";

function Measured({ report, model }) {
  if (!report) return html`<${Loading} what="this month's costs" />`;
  const cdn = report.by_service.cdn;
  const gb = report.lines.filter((l) => l.service === "cdn").reduce((sum, l) => sum + l.quantity, 0);
  const cur = report.currency;
  return html`<div class="stats cdn-stats" aria-label="This month's CDN costs">
    <${Stat} label="CDN traffic this month" value=${`${fmtNum(gb, 3)} GB`} />
    <${Stat} label="CDN cost, month to date" value=${fmtMoney(cdn.month_to_date, cur)} />
    <${Stat} label="CDN cost, projected for the month" value=${fmtMoney(cdn.forecast, cur)} />
    <${Stat} label="Project total, projected" value=${fmtMoney(report.forecast, cur)} />
  </div>
  ${model &&
  html`<p class="muted">
    Prices in force: the first ${fmtNum(model.cdn_free_gb_month)} GB of a month free for the project, then ${fmtMoney(model.cdn_per_gb, model.currency)} per GB (a GB being ${fmtBytes(model.gb_bytes)}); requests are not billed.
  </p>`}`;
}

function Estimate({ result }) {
  const cur = result.currency;
  const columns = [
    { key: "item", label: "Item" },
    { key: "quantity", label: "Quantity", class: "num", render: (l) => `${fmtNum(l.quantity, 3)} ${l.unit}` },
    { key: "unit_price", label: "Unit price", class: "num", render: (l) => fmtMoney(l.unit_price, cur) },
    { key: "amount", label: "Amount", class: "num", render: (l) => fmtMoney(l.amount, cur) },
  ];
  return html`<div class="cdn-estimate" aria-live="polite">
    <p class="cdn-estimate-total">Estimated monthly cost: <strong data-testid="cdn-estimate-monthly">${fmtMoney(result.monthly, cur)}</strong></p>
    <${Table} columns=${columns} rows=${result.lines} rowKey=${(l) => l.item} caption="How the estimate is made" />
  </div>`;
}

export default function CostCard() {
  const call = useProjectApi();
  const report = useApi("costs");
  const model = useApi("costs/model");
  const [requests, setRequests] = useState("");
  const [gb, setGb] = useState("");
  const [estimate, estimating] = useAction(async (body) => call("POST", "costs/estimate", { body }));
  const [measure, measuring] = useAction(async () => {
    const traffic = await call("GET", `${CDN}/analytics`, { query: { timeframe: "30d" } });
    const gbBytes = (model.data && model.data.gb_bytes) || 1e9;
    const r = String(traffic.requests);
    const g = String(Math.round((traffic.bytes_out / gbBytes) * 1e6) / 1e6);
    setRequests(r);
    setGb(g);
    return estimate({ cdn_gb: numberOrText(g), requests: numberOrText(r) });
  });
  const submit = (e) => {
    e.preventDefault();
    const body = { cdn_gb: numberOrText(gb) };
    const n = numberOrText(requests);
    if (n !== undefined) body.requests = n;
    estimate(body);
  };
  const err = estimating.error;
  return html`<${Card} title="Costs" id="cdn-costs">
    <${ErrorBox} error=${report.error || model.error} />
    <${Measured} report=${report.data} model=${model.data} />
    <h3>Cost estimator</h3>
    <form class="form cdn-estimator" aria-label="Cost estimator" onSubmit=${submit}>
      <div class="form-row">
        <${Input} label="Requests per month" name="cdn-est-requests" type="number" min="0" value=${requests} onValue=${setRequests}
          error=${errorAt(err, "requests")} hint="Not billed by the cost model; kept for the record" />
        <${Input} label="GB served per month (egress)" name="cdn-est-gb" type="number" min="0" step="any" value=${gb} onValue=${setGb}
          error=${errorAt(err, "cdn_gb")} hint="Proxied or from cache, all domains together" />
      </div>
      <${ErrorBox} error=${unshown(err, ["requests", "cdn_gb"]) || measuring.error} />
      <div class="actions">
        <button type="submit" class="btn primary" disabled=${estimating.busy}>Estimate the monthly cost</button>
        <button type="button" class="btn" disabled=${measuring.busy || estimating.busy} onClick=${measure}>Use the last 30 days' traffic</button>
      </div>
    </form>
    ${estimating.done && estimating.done !== true && html`<${Estimate} result=${estimating.done} />`}
  <//>`;
}
