// Security scores (docs/security-score.md): each active domain's newest score and grade with
// its trend, expandable to its checks (result, points, evidence, advice) and history, and a
// "Score now" button (POST /security/scores/{domain}/evaluate: every live edge node probed now).
import {
  html, useState, useApi, useAction, Card, Table, ErrorBox, Button, Badge, Loading, LineChart,
  fmtNum, fmtAgo, fmtTime,
} from "../ui.js";
import { SEC, evidenceText, useProjectApi, Intro } from "./security_common.js";

const scorePath = (d) => `${SEC}/scores/${encodeURIComponent(d)}`;
const RESULT = { pass: "ok", partial: "warn", fail: "failed", unknown: "unknown", "n/a": "n/a" };
const gradeKind = (g) => (g === "A+" || g === "A" ? "ok" : g === "B" || g === "C" ? "warn" : "failed");

export function Trend({ score, previous }) {
  if (previous === null || previous === undefined) return html`<span class="muted">first score</span>`;
  const d = Math.round((score - previous) * 10) / 10;
  if (!d) return html`<span class="muted">unchanged</span>`;
  return d > 0
    ? html`<span class="sec-up"><span aria-hidden="true">▲ </span>up ${fmtNum(d, 1)}</span>`
    : html`<span class="sec-down"><span aria-hidden="true">▼ </span>down ${fmtNum(-d, 1)}</span>`;
}

function Details({ domain }) {
  const doc = useApi(scorePath(domain), { query: { limit: 50 } });
  const d = doc.data;
  if (doc.error) return html`<${ErrorBox} error=${doc.error} />`;
  if (!d) return html`<${Loading} what=${`the checks of ${domain}`} />`;
  const history = [...d.history].reverse().map((p) => [p.at, p.score]);
  return html`<section class="sec-details" aria-labelledby=${`sec-checks-${domain}`}>
    <h3 id=${`sec-checks-${domain}`}>Checks of ${domain}</h3>
    <p>Score <strong>${fmtNum(d.score, 1)}</strong> of 100, grade <${Badge} state=${gradeKind(d.grade)}>${d.grade}<//>,
      probed ${fmtAgo(d.evaluated_at)} on ${d.nodes.join(", ") || "no node"}.${d.capped ? html` <strong>Grade capped:</strong> ${d.capped}.` : ""}</p>
    <${Table}
      caption="Every check, its points and what was seen"
      rows=${d.checks}
      rowKey=${(c) => c.id}
      columns=${[
        { key: "name", label: "Check", render: (c) => html`${c.name}<br /><code class="muted">${c.id}</code>` },
        { key: "result", label: "Result", render: (c) => html`<${Badge} state=${RESULT[c.result] || "unknown"}>${c.result}<//>` },
        { key: "points", label: "Points", class: "num", render: (c) => `${fmtNum(c.points, 1)} / ${fmtNum(c.weight, 1)}` },
        { key: "evidence", label: "What was seen", render: (c) => html`<span class="sec-evidence">${evidenceText(c.evidence) || "—"}</span>${c.node ? html`<br /><span class="muted">node ${c.node}</span>` : ""}` },
        { key: "advice", label: "Advice", render: (c) => c.advice || "—" },
      ]}
    />
    ${history.length > 1
      ? html`<${LineChart} label=${`Score of ${domain} over time`} series=${[{ name: "score", points: history }]} />`
      : html`<p class="muted">One evaluation so far: the trend shows from the next one.</p>`}
  </section>`;
}

function ScoreNow({ domain, onScored }) {
  const call = useProjectApi();
  const [run, state] = useAction(async () => {
    const done = await call("POST", `${scorePath(domain)}/evaluate`);
    onScored(domain);
    return done;
  });
  return html`<span>
    <${Button} write kind="small" busy=${state.busy} aria-label=${`Score now: ${domain}`} onClick=${run}>Score now<//>
    ${state.error && html`<span class="field-error" role="alert">${state.error.message}</span>`}
  </span>`;
}

export default function ScoreCard() {
  const scores = useApi(`${SEC}/scores`, { every: 15000 });
  const domains = useApi("infrastructure/domains", { query: { limit: 1000 }, every: 30000 });
  const [open, setOpen] = useState(null);
  const [version, setVersion] = useState(0);
  const byName = new Map((scores.data || []).map((s) => [s.domain, s]));
  const active = domains.data ? domains.data.domains.filter((d) => d.status === "active").map((d) => d.domain) : [];
  const names = [...new Set([...active, ...byName.keys()])].sort();
  const rows = scores.data && domains.data ? names.map((name) => ({ name, s: byName.get(name) })) : undefined;
  const onScored = (name) => {
    scores.reload();
    setOpen(name);
    setVersion((v) => v + 1);
  };
  return html`<${Card} title="Security score" id="sec-score">
    <${Intro}>Each active domain is probed from outside on every live edge node (TLS versions and ciphers,
      certificate, HTTPS redirect, HSTS, security headers, CAA, DNSSEC, the WAF) and scored out of 100. The
      control plane scores a domain within about a minute of it becoming active, then again once its score is
      an hour old (the default of <code>EDGEPLANE_SECURITY_SCORE_INTERVAL</code>); Score now probes at once.<//>
    <${ErrorBox} error=${scores.error || domains.error} />
    <${Table}
      caption="Security score per domain"
      empty=${html`No active domain in this project yet: <a href="#/domains">add one on the Domains page</a>; it is scored once it is active.`}
      rows=${rows}
      rowKey=${(r) => r.name}
      rowClass=${(r) => (open === r.name ? "selected" : undefined)}
      columns=${[
        { key: "name", label: "Domain", render: (r) => html`<a href=${`#/domains/${encodeURIComponent(r.name)}`}>${r.name}</a>` },
        { key: "score", label: "Score", class: "num", render: (r) => (r.s ? fmtNum(r.s.score, 1) : "—") },
        { key: "grade", label: "Grade", render: (r) => (r.s ? html`<${Badge} state=${gradeKind(r.s.grade)}>${r.s.grade}<//>` : html`<span class="muted">no score yet</span>`) },
        { key: "trend", label: "Trend", render: (r) => (r.s ? html`<${Trend} score=${r.s.score} previous=${r.s.previous_score} />` : "—") },
        { key: "failing", label: "Not passed", render: (r) => (r.s ? (r.s.failing.length ? r.s.failing.map((f, i) => html`${i ? ", " : ""}<code>${f}</code>`) : "every check passed") : html`<span class="muted">scored within a minute of becoming active, or Score now</span>`) },
        { key: "evaluated_at", label: "Evaluated", render: (r) => (r.s ? html`<span title=${fmtTime(r.s.evaluated_at)}>${fmtAgo(r.s.evaluated_at)}</span>` : "—") },
        { key: "_actions", label: "Actions", render: (r) => html`<div class="sec-row-actions">
            ${r.s && html`<${Button} kind="small" aria-expanded=${open === r.name ? "true" : "false"} aria-label=${`${open === r.name ? "Hide" : "Show"} checks of ${r.name}`}
              onClick=${() => setOpen(open === r.name ? null : r.name)}>${open === r.name ? "Hide checks" : "Show checks"}<//>`}
            <${ScoreNow} domain=${r.name} onScored=${onScored} />
          </div>` },
      ]}
    />
    ${open && byName.has(open) && html`<${Details} key=${`${open}-${version}-${byName.get(open).evaluated_at}`} domain=${open} />`}
  <//>`;
}
