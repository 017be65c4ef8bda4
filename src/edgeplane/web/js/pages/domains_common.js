// Small pieces the Domain Manager's modules share.
import { html, useState, useEffect, Badge } from "../ui.js";

export const domainHref = (name) => `#/domains/${encodeURIComponent(name)}`;
export const domainPath = (name) => `infrastructure/domains/${encodeURIComponent(name)}`;

// `value`, once it has stopped changing for `ms` milliseconds.
export function useDebounced(value, ms = 200) {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

export function VerificationBadge({ state }) {
  return html`<${Badge} state=${state === "pending" ? "pending" : state}>${state}<//>`;
}

// The SSL state of a domain from its newest valid certificate (or none).
export function SslBadge({ certificate }) {
  if (!certificate) return html`<${Badge} state="none">no certificate<//>`;
  return html`<${Badge} state=${certificate.status}>${certificate.status} · ${certificate.issuer}<//>`;
}

// The name as people read it, and its punycode form when that differs.
export function DomainName({ domain, display }) {
  if (!display || display === domain) return html`<span class="mono">${domain}</span>`;
  return html`<span>${display}</span> <span class="muted mono">(${domain})</span>`;
}
