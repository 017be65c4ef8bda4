// The WAF (docs/security-waf.md): its mode, paranoia level and anomaly threshold (PATCH
// /cdn/waf, the API's reasons on the fields), the last 24 hours' counts, the exclusions (each
// removable), and the recent matches polled every 5 s with a search by request id. Each rule
// of a match can be excluded on the request's path (the false-positive workflow): the
// exclusion is made with the path as an editable prefix and then listed.
import {
  html, useState, useEffect, useRef, useApi, useAction, useStoredForm, Card, Table, ErrorBox, Notice, Loading, Input,
  Select, Button, WriteForm, Badge, Stat, fmtAgo, fmtTime,
} from "../ui.js";
import { WAF, errorAt, unshown, numberOrText, words, useProjectApi, Intro } from "./security_common.js";

const MODES = [
  ["off", "Off: no inspection"],
  ["detect", "Detect: inspect and log, refuse nothing"],
  ["block", "Block: refuse requests at the threshold (403)"],
];
const PARANOIA = [
  ["1", "1: no false positives expected on ordinary sites"],
  ["2", "2: stricter rules"],
  ["3", "3: stricter still"],
  ["4", "4: the strictest (many false positives)"],
];
// ModSecurity's severities, as the matches carry them.
const SEVERITY = ["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"];
const EVERY = 5000;

// The CRS's anomaly evaluation and correlation rules: they refuse or summarise because other
// rules matched; excluding one would switch the WAF off rather than a false positive.
export const scoringRule = (id) => (id >= 949000 && id < 950000) || (id >= 959000 && id < 960000) || (id >= 980000 && id < 981000);
const pathOf = (uri) => String(uri || "/").split("?")[0] || "/";
const severity = (s) => (s !== null && s !== undefined && /^\d$/.test(String(s)) ? SEVERITY[Number(s)] : s);

function Status({ status }) {
  const top = Object.entries(status.top_rules_24h || {}).filter(([id]) => !scoringRule(Number(id)));
  return html`<div class="stats sec-stats" aria-label="WAF in the last 24 hours">
      <${Stat} label="Mode" value=${status.mode} kind=${status.mode === "block" ? "good" : ""} />
      <${Stat} label="Matches (24 h)" value=${status.matches_24h} />
      <${Stat} label="Blocked (24 h)" value=${status.blocked_24h} />
      <${Stat} label="Exclusions" value=${status.exclusions} />
    </div>
    ${top.length > 0 &&
    html`<p class="sec-top-rules"><strong>Rules matched most (24 h):</strong> ${top.map(([id, n], i) => html`${i ? ", " : ""}<code>${id}</code> (${n})`)}</p>`}`;
}

function SettingsForm({ status, onSaved }) {
  const call = useProjectApi();
  const [f, set] = useStoredForm({ mode: status.mode, paranoia: String(status.paranoia_level), threshold: String(status.anomaly_threshold) });
  const [save, saving] = useAction(async () => {
    const body = { mode: f.mode, paranoia_level: numberOrText(f.paranoia), anomaly_threshold: numberOrText(f.threshold) };
    const done = await call("PATCH", WAF, { body });
    onSaved(done);
    return done;
  });
  const err = saving.error;
  return html`<${WriteForm} label="WAF settings" onSubmit=${save}>
    <div class="form-row">
      <${Select} label="Mode" name="waf-mode" value=${f.mode} onValue=${(mode) => set({ mode })} options=${MODES} error=${errorAt(err, "mode")} />
      <${Select} label="Paranoia level" name="waf-paranoia" value=${f.paranoia} onValue=${(paranoia) => set({ paranoia })} options=${PARANOIA}
        error=${errorAt(err, "paranoia_level")} hint="Which rules of the OWASP Core Rule Set run" />
      <${Input} label="Anomaly threshold" name="waf-threshold" type="number" value=${f.threshold} onValue=${(threshold) => set({ threshold })}
        error=${errorAt(err, "anomaly_threshold")} hint="A request is refused at this score: a critical rule adds 5, error 4, warning 3, notice 2" />
    </div>
    <${ErrorBox} error=${unshown(err, ["mode", "paranoia_level", "anomaly_threshold"])} />
    <div class="actions">
      <${Button} write type="submit" kind="primary" busy=${saving.busy}>Save WAF settings<//>
    </div>
  <//>`;
}

function Exclusions({ exclusions, onChanged }) {
  const call = useProjectApi();
  const [remove, removing] = useAction(async (id) => {
    await call("DELETE", `${WAF}/exclusions/${encodeURIComponent(id)}`);
    onChanged();
  });
  return html`<h3 id="waf-exclusions-title">Exclusions</h3>
    <${ErrorBox} error=${exclusions.error || removing.error} />
    <${Table}
      caption="Rules switched off for the project"
      empty="No exclusion: every rule of the paranoia level runs on every path."
      rows=${exclusions.data}
      rowKey=${(x) => x.id}
      columns=${[
        { key: "rules", label: "Rules", render: (x) => x.rules.map((r, i) => html`${i ? ", " : ""}<code>${r}</code>`) },
        { key: "path", label: "Where", render: (x) => (x.path ? html`paths starting with <code>${x.path}</code>` : "everywhere") },
        { key: "note", label: "Note", render: (x) => x.note || "—" },
        { key: "id", label: "ID", render: (x) => html`<code>${x.id}</code>` },
        { key: "_remove", label: "Actions", render: (x) => html`<${Button} write kind="small danger" busy=${removing.busy}
            aria-label=${`Remove exclusion ${x.id} (rule ${x.rules.join(", ")}${x.path ? ` on ${x.path}` : ""})`}
            onClick=${() => remove(x.id)}>Remove<//>` },
      ]}
    />`;
}

// The exclusion a match's "Exclude" action prepares: the rule, the path (editable), a note.
function ExcludeForm({ draft, onDone, onCancel }) {
  const call = useProjectApi();
  const [rules, setRules] = useState(String(draft.rule));
  const [path, setPath] = useState(draft.path);
  const [note, setNote] = useState(draft.note);
  const box = useRef(null);
  useEffect(() => {
    const input = box.current && box.current.querySelector("input[name='waf-exclude-path']");
    if (input) input.focus();
  }, [draft]);
  const [create, creating] = useAction(async () => {
    const body = { rules: words(rules), path: path.trim() || undefined, note: note.trim() || undefined };
    const done = await call("POST", `${WAF}/exclusions`, { body });
    onDone(done);
    return done;
  });
  const err = creating.error;
  return html`<div class="sec-exclude" ref=${box}>
    <${WriteForm} label=${`Exclude rule ${draft.rule}`} onSubmit=${create}>
      <h3>Exclude rule <code>${draft.rule}</code></h3>
      <p class="muted">${draft.message}. The rule stays on everywhere else; the edge nodes apply the exclusion within seconds.</p>
      <div class="form-row">
        <${Input} label="Rules to exclude" name="waf-exclude-rules" value=${rules} onValue=${setRules} error=${errorAt(err, "rules")}
          hint="Rule ids or ranges (942100-942199), comma-separated" />
        <${Input} label="Path prefix" name="waf-exclude-path" value=${path} onValue=${setPath} error=${errorAt(err, "path")}
          hint="Requests whose path starts with it; shorten it to cover more (empty: everywhere)" />
        <${Input} label="Note" name="waf-exclude-note" value=${note} onValue=${setNote} error=${errorAt(err, "note")} />
      </div>
      <${ErrorBox} error=${unshown(err, ["rules", "path", "note"])} />
      <div class="actions">
        <${Button} write type="submit" kind="primary" busy=${creating.busy}>Create the exclusion<//>
        <${Button} onClick=${onCancel}>Cancel<//>
      </div>
    <//>
  </div>`;
}

function RuleList({ rules }) {
  return html`<ul class="sec-rules">
    ${rules.map((r) => html`<li><code>${r.rule}</code> ${r.message}${r.severity !== null && r.severity !== undefined ? html` <span class="muted">(${severity(r.severity)})</span>` : ""}
      ${r.data && html`<br /><span class="muted sec-matched">${r.data}</span>`}</li>`)}
  </ul>`;
}

function Matches({ status, onExcluded }) {
  const [typed, setTyped] = useState("");
  const [requestId, setRequestId] = useState("");
  const [before, setBefore] = useState(null);
  const [draft, setDraft] = useState(null);
  const [made, setMade] = useState(null);
  const matches = useApi(`${WAF}/matches`, {
    query: { request_id: requestId || undefined, before: before || undefined, limit: 25 },
    every: before ? undefined : EVERY,
  });
  const search = (e) => {
    e.preventDefault();
    setRequestId(typed.trim());
    setBefore(null);
  };
  const items = matches.data ? matches.data.items : undefined;
  const empty = requestId
    ? `No match for request ${requestId} yet. The edge nodes send their matches every few seconds; this list refreshes every ${EVERY / 1000} s.`
    : status && status.mode === "off"
      ? "No match yet. The WAF is off: choose Detect to see what it would block without refusing anything."
      : "No request has matched a WAF rule yet. Matches show here within seconds of the edge seeing them.";
  return html`<h3 id="waf-matches-title">Recent matches</h3>
    <form class="form sec-search" role="search" aria-label="Find a request's matches" onSubmit=${search}>
      <div class="form-row">
        <${Input} label="Request ID" name="waf-request-id" value=${typed} onValue=${setTyped} autocomplete="off"
          hint="The id a 403 page names (its X-Request-Id header)" />
      </div>
      <div class="actions">
        <button type="submit" class="btn primary">Search</button>
        ${requestId && html`<button type="button" class="btn" onClick=${() => { setTyped(""); setRequestId(""); setBefore(null); }}>Show all matches</button>`}
      </div>
    </form>
    <${ErrorBox} error=${matches.error} />
    ${made && html`<${Notice} kind="good">Exclusion ${made.id} created: rule ${made.rules.join(", ")} is off ${made.path ? `for paths starting with ${made.path}` : "everywhere"} once the edge nodes apply it (within seconds).<//>`}
    <${Table}
      caption=${requestId ? `Matches of request ${requestId}` : "Recent matches, newest first"}
      empty=${empty}
      rows=${items}
      rowKey=${(m) => m.id}
      columns=${[
        { key: "at", label: "Time", render: (m) => html`<span title=${fmtTime(m.at)}>${fmtAgo(m.at)}</span>` },
        { key: "request_id", label: "Request ID", render: (m) => html`<code class="sec-request-id">${m.request_id}</code>` },
        { key: "rules", label: "Rules", render: (m) => html`<${RuleList} rules=${m.rules} />` },
        { key: "uri", label: "Request", render: (m) => html`<span class="sec-uri">${m.method} <code>${m.uri}</code></span><br /><span class="muted">${m.domain}</span>` },
        { key: "action", label: "Action", render: (m) => html`<${Badge} state=${m.action === "blocked" ? "error" : "warn"}>${m.action}<//>${m.anomaly_score !== null ? html`<br /><span class="muted">score ${m.anomaly_score}</span>` : ""}` },
        { key: "client", label: "Client", render: (m) => html`<code>${m.client}</code>` },
        { key: "_exclude", label: "Actions", render: (m) => html`<div class="sec-row-actions">
            ${m.rules.filter((r) => !scoringRule(r.rule)).map((r) => html`<${Button} write kind="small"
              aria-label=${`Exclude rule ${r.rule} on this path (${pathOf(m.uri)})`}
              onClick=${() => { setMade(null); setDraft({ key: `${m.id}-${r.rule}`, rule: r.rule, message: r.message, path: pathOf(m.uri), note: `false positive: request ${m.request_id}` }); }}>
              Exclude rule ${r.rule} on this path<//>`)}
          </div>` },
      ]}
    />
    <div class="actions sec-pager">
      <${Button} disabled=${!before} onClick=${() => setBefore(null)}>Newest<//>
      <${Button} disabled=${!(matches.data && matches.data.next_before)} onClick=${() => setBefore(matches.data.next_before)}>Older<//>
    </div>
    ${draft && html`<${ExcludeForm} key=${draft.key} draft=${draft} onCancel=${() => setDraft(null)}
      onDone=${(x) => { setDraft(null); setMade(x); onExcluded(); }} />`}`;
}

export default function WafCard() {
  const status = useApi(WAF, { every: 10000 });
  const exclusions = useApi(`${WAF}/exclusions`);
  const s = status.data;
  const [saved, setSaved] = useState(null);
  const reload = () => {
    status.reload();
    exclusions.reload();
  };
  return html`<${Card} title="Web application firewall" id="sec-waf">
    <${Intro}>ModSecurity with the OWASP Core Rule Set inspects what would reach the origin (cache misses and
      unsafe methods). A refused request gets a 403 naming its request id: search it below, and exclude the
      rule on that path if the request was legitimate.<//>
    <${ErrorBox} error=${status.error} />
    ${s
      ? html`<${Status} status=${s} />
          <${SettingsForm} status=${s}
            onSaved=${(done) => { setSaved(done); reload(); }} />
          ${saved && html`<${Notice} kind="good">WAF settings saved (mode ${saved.mode}, paranoia ${saved.paranoia_level}, threshold ${saved.anomaly_threshold}): the edge nodes apply them within seconds.<//>`}`
      : html`<${Loading} what="the WAF settings" />`}
    <${Exclusions} exclusions=${exclusions} onChanged=${reload} />
    <${Matches} status=${s} onExcluded=${reload} />
  <//>`;
}
