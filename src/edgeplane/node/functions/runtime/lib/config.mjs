// The runtime's config (PUT /config, --config FILE): node settings and the function versions
// to run, checked and completed with defaults.

import { createHash } from "node:crypto";

export const DEFAULT_TIMEOUT_MS = 5000;
export const DEFAULT_MEMORY_MB = 128;
export const MAX_CODE_BYTES = 1024 * 1024;

export class ConfigError extends Error {}

function integer(value, name, fallback, min, max) {
  if (value === undefined || value === null) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function strings(value, name) {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new ConfigError(`${name} must be an object`);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new ConfigError(`${name}.${k} must be a string`);
  }
  return { ...value };
}

// One function version of the config: a complete spec, or ConfigError.
export function functionSpec(raw) {
  if (typeof raw !== "object" || raw === null) throw new ConfigError("a function must be an object");
  const { key, code } = raw;
  if (typeof key !== "string" || !/^[^/\s]+\/[^/\s]+$/.test(key)) throw new ConfigError('key must be "<project>/<name>"');
  if (typeof code !== "string") throw new ConfigError("code must be a string");
  if (Buffer.byteLength(code) > MAX_CODE_BYTES) throw new ConfigError("the code exceeds 1 MiB");
  const hosts = raw.hosts ?? [];
  if (!Array.isArray(hosts) || !hosts.every((h) => typeof h === "string")) throw new ConfigError("hosts must be a list of names");
  const spec = {
    key,
    id: typeof raw.id === "string" && raw.id ? raw.id : `${key}@${raw.version}`,
    name: typeof raw.name === "string" && raw.name ? raw.name : key.split("/")[1],
    version: raw.version ?? null,
    sha256: typeof raw.sha256 === "string" ? raw.sha256 : "",
    code,
    env: strings(raw.env, "env"),
    secrets: strings(raw.secrets, "secrets"),
    timeout_ms: integer(raw.timeout_ms, "timeout_ms", DEFAULT_TIMEOUT_MS, 1, 60000),
    memory_mb: integer(raw.memory_mb, "memory_mb", DEFAULT_MEMORY_MB, 8, 1024),
    hosts: hosts.map((h) => h.toLowerCase().replace(/\.$/, "")),
  };
  // what needs a new isolate when it changes (hosts do not: the host side reads them)
  spec.fingerprint = createHash("sha256")
    .update(JSON.stringify([spec.id, spec.name, spec.version, spec.sha256, code, spec.env, spec.secrets, spec.timeout_ms, spec.memory_mb]))
    .digest("hex");
  return spec;
}

// The node settings of a config; the function entries stay raw (functionSpec checks each).
export function parseConfig(raw) {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError("the config must be a JSON object");
  const functions = raw.functions ?? [];
  if (!Array.isArray(functions)) throw new ConfigError("functions must be a list");
  const optionalPath = (name) => {
    const value = raw[name] ?? null;
    if (value !== null && typeof value !== "string") throw new ConfigError(`${name} must be a path or null`);
    return value || null;
  };
  return {
    settings: {
      fetch_socket: optionalPath("fetch_socket"),
      geoip_db: optionalPath("geoip_db"),
      allow_private_fetch: raw.allow_private_fetch === true,
    },
    functions,
  };
}
