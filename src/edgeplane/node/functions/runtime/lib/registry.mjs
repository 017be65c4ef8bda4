// The function versions the runtime serves, by key and by id, and config loads: new versions
// compiled, unchanged ones kept warm, those no longer named retired; a version that fails to
// load leaves the previous version of its key in place. Loads run one at a time.

import { ConfigError, functionSpec, parseConfig } from "./config.mjs";
import { LoadError } from "./errors.mjs";
import { FunctionVersion } from "./version.mjs";

const round = (ms) => Math.round(ms * 100) / 100;

export class Registry {
  constructor(runtime) {
    this.runtime = runtime; // {console, geo, settings, outbound}
    this.byKey = new Map();
    this.byId = new Map();
    this.queue = Promise.resolve();
  }

  // Load `raw` (the parsed config JSON): {"functions": {id: result}} (ConfigError when the
  // config itself is malformed: nothing changes then).
  load(raw) {
    const run = this.queue.then(() => this.#apply(raw));
    this.queue = run.catch(() => {});
    return run;
  }

  async #apply(raw) {
    const { settings, functions } = parseConfig(raw);
    const answer = { functions: {} };
    try {
      await this.runtime.geo.use(settings.geoip_db);
    } catch (error) {
      answer.geoip_error = `cannot read the GeoIP database ${settings.geoip_db}: ${error.message}`;
    }
    Object.assign(this.runtime.settings, settings);
    const next = new Map();
    const created = [];
    const keepPrevious = (key) => {
      const previous = this.byKey.get(key);
      if (previous && !next.has(key)) next.set(key, previous);
    };
    for (const entry of functions) {
      const id = entry && typeof entry.id === "string" ? entry.id : String(entry && entry.key);
      let spec;
      try {
        spec = functionSpec(entry);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        answer.functions[id] = { ok: false, error: error.message };
        if (entry && typeof entry.key === "string") keepPrevious(entry.key);
        continue;
      }
      const existing = this.byId.get(spec.id);
      if (existing && existing.spec.fingerprint === spec.fingerprint) {
        existing.setHosts(spec.hosts);
        next.set(spec.key, existing);
        answer.functions[spec.id] = { ok: true, cold_ms: round(existing.coldMs), kept: true };
        continue;
      }
      const version = new FunctionVersion(spec, this.runtime);
      try {
        const ms = await version.warm();
        created.push(version);
        next.set(spec.key, version);
        answer.functions[spec.id] = { ok: true, cold_ms: round(ms) };
      } catch (error) {
        const message = error instanceof LoadError ? error.describe() : String(error.message || error);
        answer.functions[spec.id] = { ok: false, error: message };
        keepPrevious(spec.key);
      }
    }
    const live = new Set(next.values());
    for (const version of [...this.byId.values(), ...created]) {
      if (!live.has(version)) version.retire();
    }
    this.byKey = next;
    this.byId = new Map([...live].map((v) => [v.spec.id, v]));
    return answer;
  }

  async status() {
    const versions = [...this.byId.values()];
    const statuses = await Promise.all(versions.map((version) => version.status()));
    const functions = Object.fromEntries(versions.map((version, i) => [version.spec.id, statuses[i]]));
    return { rss: process.memoryUsage().rss, functions };
  }

  dispose() {
    for (const version of this.byId.values()) {
      if (version.instance) version.instance.dispose();
    }
  }
}
