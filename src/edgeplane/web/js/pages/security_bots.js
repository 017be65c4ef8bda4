// Bot protection (docs/security-bots.md): the requests of each bot class and action the edge
// counted over 1 h / 24 h / 7 d (GET /cdn/bots), and the settings (PUT /cdn/bots/settings
// replaces them whole; the project needs a CDN config), the API's reasons on their fields.
import {
  html, useState, useApi, useAction, Card, Table, ErrorBox, Notice, Loading, Input, Select, Button,
  WriteForm, Stat, fmtNum, fmtTime,
} from "../ui.js";
import { BOTS, CDN, errorAt, unshown, numberOrText, words, useProjectApi, Intro } from "./security_common.js";

const RANGES = [["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"]];
const CLASSES = [
  ["bad", "Known bad (scanners, attack tools)"],
  ["impostor", "Impostors of good bots"],
  ["automated", "Automated (HTTP libraries, scripts, no user agent)"],
  ["behaviour", "Flagged for behaviour"],
  ["good", "Good bots (yours)"],
];
const COUNTED = [["detect", "Detected"], ["challenge", "Challenged"], ["pass", "Passed a challenge"], ["block", "Blocked"]];
const ACTIONS = [
  ["off", "Off: ignored"],
  ["detect", "Detect: served and counted"],
  ["challenge", "Challenge first"],
  ["block", "Block (403)"],
];
const NUMBERS = [
  // [field of behaviour, label, hint]
  ["window_s", "Window (seconds)", "The counts below cover this window"],
  ["max_requests", "Requests per window", "More flags the address"],
  ["max_paths", "Distinct paths per window", "The spread of a crawl or a scan"],
  ["max_error_ratio", "Error ratio (0-1)", "Share of 4xx/5xx answers"],
  ["min_requests", "Requests before the error ratio counts", ""],
  ["flag_s", "Flagged for (seconds)", ""],
];

function Counts({ data }) {
  const by = {};
  data.counts.forEach((c) => { by[`${c.bot_class}:${c.action}`] = c.requests; });
  const rows = CLASSES.map(([k, label]) => ({ k, label }));
  return html`<div class="stats sec-stats" aria-label="Bot requests">
      <${Stat} label="Requests" value=${fmtNum(data.requests)} />
      <${Stat} label="From bots" value=${fmtNum(data.bot_requests)} />
      <${Stat} label="Challenged" value=${fmtNum(data.challenged)} />
      <${Stat} label="Blocked" value=${fmtNum(data.blocked)} kind=${data.blocked ? "bad" : ""} />
    </div>
    <${Table}
      caption=${`Bot requests by class and action, ${fmtTime(data.start)} to ${fmtTime(data.end)}`}
      rows=${rows}
      rowKey=${(r) => r.k}
      columns=${[
        { key: "label", label: "Class", render: (r) => html`${r.label} <code class="muted">${r.k}</code>` },
        ...COUNTED.map(([a, label]) => ({ key: a, label, class: "num", render: (r) => fmtNum(by[`${r.k}:${a}`] || 0) })),
      ]}
    />
    ${!data.counts.length &&
    html`<p class="muted">${data.enabled
      ? "No bot request counted in this timeframe."
      : "No bot request counted: bot protection is off (every action below is Off and there is no good bot)."}</p>`}`;
}

function fromSettings(s) {
  return {
    mode: s.mode,
    automated: s.automated,
    behaviour: s.behaviour.action,
    numbers: Object.fromEntries(NUMBERS.map(([k]) => [k, String(s.behaviour[k])])),
    challenge: s.challenge,
    difficulty: String(s.difficulty),
    cookieTtl: String(s.cookie_ttl_s),
    goodBots: s.good_bots.map((b) => ({ name: b.name, userAgent: b.user_agent, addresses: b.addresses.join(", ") })),
  };
}

function toSettings(f) {
  const behaviour = { action: f.behaviour };
  NUMBERS.forEach(([k]) => { const v = numberOrText(f.numbers[k]); if (v !== undefined) behaviour[k] = v; });
  const body = {
    mode: f.mode,
    automated: f.automated,
    behaviour,
    challenge: f.challenge,
    good_bots: f.goodBots.map((b) => ({ name: b.name.trim(), user_agent: b.userAgent.trim(), addresses: words(b.addresses) })),
  };
  const difficulty = numberOrText(f.difficulty);
  if (difficulty !== undefined) body.difficulty = difficulty;
  const ttl = numberOrText(f.cookieTtl);
  if (ttl !== undefined) body.cookie_ttl_s = ttl;
  return body;
}

const SHOWN = ["mode", "automated", "behaviour", "challenge", "difficulty", "cookie_ttl_s", "good_bots"];

function SettingsForm({ settings, configured, onSaved }) {
  const call = useProjectApi();
  const [f, setF] = useState(() => fromSettings(settings));
  const set = (patch) => setF((old) => ({ ...old, ...patch }));
  const setNumber = (k, v) => setF((old) => ({ ...old, numbers: { ...old.numbers, [k]: v } }));
  const setBot = (i, patch) => set({ goodBots: f.goodBots.map((b, n) => (n === i ? { ...b, ...patch } : b)) });
  const [save, saving] = useAction(async () => {
    const done = await call("PUT", `${BOTS}/settings`, { body: toSettings(f) });
    onSaved(done);
    return done;
  });
  const err = saving.error;
  return html`<${WriteForm} label="Bot protection settings" onSubmit=${save}>
    <h3>Settings</h3>
    ${!configured && html`<${Notice} kind="warn">This project has no CDN config yet: <a href="#/cdn">set one on the CDN page</a> before bot protection can be saved.<//>`}
    <div class="form-row">
      <${Select} label="Known-bad user agents and impostors" name="bots-mode" value=${f.mode} onValue=${(mode) => set({ mode })} options=${ACTIONS} error=${errorAt(err, "mode")} />
      <${Select} label="Automated clients" name="bots-automated" value=${f.automated} onValue=${(automated) => set({ automated })} options=${ACTIONS} error=${errorAt(err, "automated")} />
      <${Select} label="Addresses flagged for behaviour" name="bots-behaviour" value=${f.behaviour} onValue=${(behaviour) => set({ behaviour })} options=${ACTIONS} error=${errorAt(err, "behaviour.action")} />
    </div>
    ${[NUMBERS.slice(0, 3), NUMBERS.slice(3)].map((row) => html`<div class="form-row">
      ${row.map(([k, label, hint]) => html`<${Input} label=${label} name=${`bots-${k}`} type="number" step=${k === "max_error_ratio" ? "0.01" : undefined}
        value=${f.numbers[k]} onValue=${(v) => setNumber(k, v)} error=${errorAt(err, `behaviour.${k}`)} hint=${hint || undefined} />`)}
    </div>`)}
    <div class="form-row">
      <${Select} label="Challenge" name="bots-challenge" value=${f.challenge} onValue=${(challenge) => set({ challenge })} error=${errorAt(err, "challenge")}
        options=${[["javascript", "JavaScript: a small proof of work"], ["cookie", "Cookie: a redirect that sets a signed cookie"]]} />
      <${Input} label="Proof-of-work difficulty (bits)" name="bots-difficulty" type="number" value=${f.difficulty} onValue=${(difficulty) => set({ difficulty })}
        error=${errorAt(err, "difficulty")} hint="0-24; 12 is a few milliseconds in a browser" />
      <${Input} label="A passed challenge lasts (seconds)" name="bots-cookie-ttl" type="number" value=${f.cookieTtl} onValue=${(cookieTtl) => set({ cookieTtl })}
        error=${errorAt(err, "cookie_ttl_s")} />
    </div>
    <div class="sec-good-bots" role="group" aria-labelledby="bots-good-title">
      <p class="cdn-group-label" id="bots-good-title">Good bots (always served from their own addresses; the same user agent elsewhere is an impostor)</p>
      ${!f.goodBots.length && html`<p class="muted">None.</p>`}
      ${f.goodBots.map((b, i) => html`<div class="form-row" key=${i}>
        <${Input} label=${`Good bot ${i + 1} name`} name=${`bots-good-name-${i}`} value=${b.name} onValue=${(name) => setBot(i, { name })} error=${errorAt(err, `good_bots.${i}.name`)} />
        <${Input} label=${`Good bot ${i + 1} user agent`} name=${`bots-good-ua-${i}`} value=${b.userAgent} onValue=${(userAgent) => setBot(i, { userAgent })}
          error=${errorAt(err, `good_bots.${i}.user_agent`)} hint="A part of its User-Agent, e.g. Googlebot" />
        <${Input} label=${`Good bot ${i + 1} addresses`} name=${`bots-good-addresses-${i}`} value=${b.addresses} onValue=${(addresses) => setBot(i, { addresses })}
          error=${errorAt(err, `good_bots.${i}.addresses`)} hint="CIDRs, comma-separated" />
        <${Button} write kind="small" aria-label=${`Remove good bot ${i + 1}`} onClick=${() => set({ goodBots: f.goodBots.filter((_, n) => n !== i) })}>Remove<//>
      </div>`)}
      <${Button} write kind="small" onClick=${() => set({ goodBots: [...f.goodBots, { name: "", userAgent: "", addresses: "" }] })}>Add a good bot<//>
    </div>
    <${ErrorBox} error=${unshown(err, SHOWN)} />
    <div class="actions">
      <${Button} write type="submit" kind="primary" busy=${saving.busy}>Save bot settings<//>
    </div>
  <//>`;
}

export default function BotsCard() {
  const [range, setRange] = useState("1h");
  const summary = useApi(BOTS, { query: { timeframe: range }, every: 5000 });
  const settings = useApi(`${BOTS}/settings`);
  const state = useApi(`${CDN}/state`, { every: 15000 });
  const [saved, setSaved] = useState(false);
  const picker = html`<div class="cdn-range" role="group" aria-label="Bot counts time range">
    ${RANGES.map(([k, label]) => html`<button type="button" class=${k === range ? "btn small primary" : "btn small"}
      aria-pressed=${k === range ? "true" : "false"} onClick=${() => setRange(k)}>${label}</button>`)}
  </div>`;
  return html`<${Card} title="Bots" id="sec-bots" actions=${picker}>
    <${Intro}>The edge sorts clients by user agent and behaviour and counts, challenges or blocks each class as
      set below; a client in no class is served untouched.<//>
    <${ErrorBox} error=${summary.error || settings.error || state.error} />
    ${summary.data ? html`<${Counts} data=${summary.data} />` : html`<${Loading} what="the bot counts" />`}
    ${settings.data && state.data
      ? html`<${SettingsForm} key=${JSON.stringify(settings.data)} settings=${settings.data} configured=${state.data.configured}
          onSaved=${() => { setSaved(true); settings.reload(); summary.reload(); }} />`
      : html`<${Loading} what="the bot settings" />`}
    ${saved && html`<${Notice} kind="good">Bot settings saved: the edge nodes apply them with the next snapshot, within seconds.<//>`}
  <//>`;
}
