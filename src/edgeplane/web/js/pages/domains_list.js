// The domain list (searched and paged by the API: ?q= and cursors) and the form that adds a
// domain, validated by the API as you type (POST ?dry_run=true: IDNA, public suffix, clash).
import {
  html, useState, useEffect, useRef, api, useApi, useSession, navigate, fieldError,
  Page, Card, ErrorBox, Input, Button, WriteForm, Table, Badge, fmtTime,
} from "../ui.js";
import { useDebounced, domainHref, VerificationBadge, SslBadge } from "./domains_common.js";

const PAGE_SIZE = 25;

// Asks the API whether `name` could be added (nothing is created): {checking, check, error}.
function useDryRun(name, enabled) {
  const settled = useDebounced(name.trim(), 200);
  const [state, setState] = useState({ checking: false, check: null, error: null, name: "" });
  const seq = useRef(0);
  const { project } = useSession();
  useEffect(() => {
    const mine = ++seq.current;
    if (!settled || !enabled) {
      setState({ checking: false, check: null, error: null, name: settled });
      return;
    }
    setState((s) => ({ ...s, checking: true }));
    api("POST", "infrastructure/domains", { body: { domain: settled }, query: { dry_run: true }, project }).then(
      (check) => mine === seq.current && setState({ checking: false, check, error: null, name: settled }),
      (error) => mine === seq.current && setState({ checking: false, check: null, error, name: settled }),
    );
  }, [settled, enabled, project]);
  return { ...state, stale: settled !== name.trim() };
}

function checkHint(check) {
  if (!check) return "e.g. shop.example.com; Unicode names are stored in their punycode form.";
  const stored = check.display_name !== check.domain ? `Stored as ${check.domain} (punycode). ` : "";
  const verify = check.verification_required
    ? "You will prove ownership next (DNS, file or email)."
    : "A reserved name: verified at once.";
  return `${stored}${check.domain} is free. ${verify}`;
}

function AddDomain() {
  const { canWrite, project } = useSession();
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const dry = useDryRun(name, canWrite);
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const added = await api("POST", "infrastructure/domains", { body: { domain: name.trim() }, project });
      navigate(domainHref(added.domain_config.domain));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const shown = error || (!dry.stale && dry.error);
  const fieldReason = fieldError(shown, "domain");
  const hint = dry.checking || dry.stale ? (name.trim() ? "Checking…" : checkHint(null)) : checkHint(dry.check);
  return html`<${Card} title="Add a domain" id="add-domain">
    <${WriteForm} label="Add a domain" onSubmit=${submit}>
      <div class="form-row dm-add">
        <${Input} label="Domain name" name="domain" value=${name} autocomplete="off" spellcheck="false"
          onValue=${(v) => { setName(v); setError(null); }}
          error=${name.trim() ? fieldReason : null} hint=${hint} />
        <div class="dm-add-button">
          <${Button} type="submit" kind="primary" write busy=${busy} disabled=${!name.trim()}>Add domain<//>
        </div>
      </div>
      ${shown && !fieldReason && html`<${ErrorBox} error=${shown} />`}
    <//>
  <//>`;
}

function DomainTable() {
  const [text, setText] = useState("");
  const q = useDebounced(text.trim(), 200);
  const [cursors, setCursors] = useState([]); // the cursor of every page before this one
  const [cursor, setCursor] = useState(null);
  useEffect(() => { setCursors([]); setCursor(null); }, [q]);
  const list = useApi("infrastructure/domains", { query: { q, cursor, limit: PAGE_SIZE } });
  const data = list.data;
  const columns = [
    {
      key: "domain",
      label: "Domain",
      render: (d) => html`<a href=${domainHref(d.domain)}>${d.display_name}</a>
        ${d.display_name !== d.domain && html` <span class="muted mono">${d.domain}</span>`}`,
    },
    { key: "verification", label: "Verification", render: (d) => html`<${VerificationBadge} state=${d.verification.state} />` },
    { key: "ssl", label: "SSL", render: (d) => html`<${SslBadge} certificate=${d.certificate} />` },
    { key: "locked", label: "Lock", render: (d) => (d.locked ? html`<${Badge} state="locked">locked<//>` : html`<span class="muted">unlocked</span>`) },
    { key: "dnssec", label: "DNSSEC", render: (d) => (d.dnssec ? html`<${Badge} state="on">signed<//>` : html`<span class="muted">off</span>`) },
    { key: "created_at", label: "Added", render: (d) => html`<span class="muted">${fmtTime(d.created_at)}</span>` },
  ];
  const page = cursors.length + 1;
  const next = () => { setCursors([...cursors, cursor]); setCursor(data.next_cursor); };
  const prev = () => { setCursor(cursors[cursors.length - 1]); setCursors(cursors.slice(0, -1)); };
  return html`<${Card} title="Domains" id="domain-list">
    <div class="dm-search" role="search">
      <${Input} label="Search domains" name="q" type="search" value=${text} onValue=${setText}
        autocomplete="off" spellcheck="false" hint="Part of a name, in Unicode or punycode." />
    </div>
    <${ErrorBox} error=${list.error} />
    <div aria-live="polite" aria-busy=${list.loading ? "true" : "false"}>
      <${Table} columns=${columns} rows=${data && data.domains} rowKey=${(d) => d.domain}
        caption=${q ? `Domains containing “${q}”, page ${page}` : `Domains, page ${page}`}
        empty=${q ? `No domain contains “${q}”.` : "No domain yet: add one above."} />
    </div>
    <nav class="dm-pager" aria-label="Pages of domains">
      <${Button} onClick=${prev} disabled=${!cursors.length || list.loading}>Previous page<//>
      <span class="muted">Page ${page}</span>
      <${Button} onClick=${next} disabled=${!data || !data.next_cursor || list.loading}>Next page<//>
    </nav>
  <//>`;
}

export default function DomainList() {
  return html`<${Page} title="Domains" subtitle="The project's domains: add one, then verify it, manage its DNS and see its traffic.">
    <${AddDomain} />
    <${DomainTable} />
  <//>`;
}
