// The under-attack switch (docs/security-ddos.md): its state, since when (the newest change of
// the project's CDN config in the audit trail that flipped it), the client limits the edge
// applies now, and a button that turns it on or off after a sentence saying what it does.
import {
  html, useState, useApi, useAction, useSession, Card, Badge, Button, ErrorBox, Notice, Loading,
  fmtAgo, fmtTime,
} from "../ui.js";
import { UNDER_ATTACK, fmtSize, useProjectApi, Intro } from "./security_common.js";

// What the switch tightens each limit to (edgeplane/model/client_limits.py: UNDER_ATTACK).
const TIGHTENS = "at most 20 requests in progress at once and 20 requests a second (bursts of 40) " +
  "per client address, 5 seconds to send a request header, 10 seconds between two reads of a " +
  "request body or two writes of a response, 10 seconds for an idle keep-alive connection, " +
  "request headers up to 16 KiB and bodies up to 10 MiB";

const LIMITS = [
  ["max_connections", "Requests in progress per client", (v) => String(v)],
  ["header_timeout_s", "Time to send the request header", (v) => `${v} s`],
  ["body_timeout_s", "Between two reads of the body", (v) => `${v} s`],
  ["send_timeout_s", "Between two writes of the response", (v) => `${v} s`],
  ["keepalive_timeout_s", "Idle keep-alive connection", (v) => `${v} s`],
  ["max_header_bytes", "Request header size", fmtSize],
  ["max_body_bytes", "Request body size", fmtSize],
];

const onIn = (doc) => !!(doc && doc.security && doc.security.under_attack);

// The newest audit event of the project's CDN config that turned the switch to `state`.
function useSince(state, revision) {
  const { project } = useSession();
  const events = useApi("audit", { query: { kind: "cdn_config", object_id: project, limit: 200 }, deps: [revision] });
  if (!events.data) return undefined;
  return events.data.items.find((e) => onIn(e.after) === state && onIn(e.before) !== state) || null;
}

function Limits({ doc }) {
  const rate = doc.rate_limit;
  return html`<h3>Client limits the edge applies now</h3>
    <dl class="facts sec-limits">
    ${LIMITS.map(([key, label, fmt]) => html`<dt>${label}</dt><dd>${doc.limits[key] === null ? html`<span class="muted">the edge's default</span>` : fmt(doc.limits[key])}</dd>`)}
    <dt>Request rate per client</dt>
    <dd>${rate ? `${rate.rate}/s, burst ${rate.burst}` : html`<span class="muted">no limit</span>`}</dd>
  </dl>`;
}

export default function UnderAttackCard() {
  const call = useProjectApi();
  const state = useApi(UNDER_ATTACK, { every: 10000 });
  const doc = state.data;
  const on = !!(doc && doc.under_attack);
  const since = useSince(on, doc && doc.revision);
  const [asking, setAsking] = useState(false);
  const [flip, flipping] = useAction(async () => {
    const done = await call("POST", UNDER_ATTACK, { body: { enabled: !on } });
    setAsking(false);
    state.reload();
    return done;
  });
  const verb = on ? "Turn off" : "Turn on";
  return html`<${Card} title="Under attack" id="sec-under-attack">
    <${Intro}>One switch that tightens every client limit of the project at once, against a flood
      of requests or slow clients (L7 DDoS).<//>
    <${ErrorBox} error=${state.error} />
    ${!doc
      ? html`<${Loading} what="the switch" />`
      : html`<p class="sec-switch-state" data-testid="under-attack-state">
            <${Badge} state=${on ? "firing" : "off"}>${on ? "on" : "off"}<//>
            ${" "}
            ${on
              ? html`Under attack${since ? html`, since <span title=${fmtTime(since.at)}>${fmtAgo(since.at)}</span> (turned on by ${since.actor})` : ""}: the edge applies the tightened limits below.`
              : html`Not under attack${since ? html` since <span title=${fmtTime(since.at)}>${fmtAgo(since.at)}</span> (turned off by ${since.actor})` : ""}: the project's own limits apply.`}
          </p>
          <${Limits} doc=${doc} />
          ${asking
            ? html`<div class="sec-confirm" role="group" aria-label=${`${verb} under-attack mode`}>
                <p>${on
                  ? "Turn under-attack mode off? The edge goes back to the project's own client limits."
                  : `Turn under-attack mode on? Every edge node then allows ${TIGHTENS} (a limit of the project's own that is already tighter stays). The timeouts apply to every project on the same nodes.`}</p>
                <div class="actions">
                  <${Button} write kind=${on ? "primary" : "danger"} busy=${flipping.busy} onClick=${flip}>${verb} under-attack mode<//>
                  <${Button} onClick=${() => setAsking(false)}>Cancel<//>
                </div>
              </div>`
            : html`<div class="actions">
                <${Button} write kind=${on ? "" : "danger"} onClick=${() => { flipping.reset(); setAsking(true); }}>${verb} under-attack mode…<//>
              </div>`}
          <${ErrorBox} error=${flipping.error} />
          ${flipping.done && flipping.done.revision &&
          html`<${Notice} kind="good">Saved as revision ${flipping.done.revision}: the edge nodes apply it within seconds.<//>`}`}
  <//>`;
}
