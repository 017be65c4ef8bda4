// request.geo: the client address looked up in a MaxMind City database (country and
// continent codes, English city name, coordinates); nulls when unknown or without database.

import net from "node:net";
import maxmind from "maxmind";

export const NO_GEO = Object.freeze({ country: null, continent: null, city: null, latitude: null, longitude: null });

export class Geo {
  constructor() {
    this.path = null;
    this.reader = null;
  }

  // Use the database at `path` (null: none). Throws when it cannot be read.
  async use(path) {
    if (path === this.path) return;
    this.reader = path ? await maxmind.open(path, { cache: { max: 10000 } }) : null;
    this.path = path;
  }

  lookup(ip) {
    if (this.reader === null || !ip || !net.isIP(ip)) return NO_GEO;
    let record;
    try {
      record = this.reader.get(ip);
    } catch {
      return NO_GEO;
    }
    if (!record) return NO_GEO;
    return {
      country: record.country?.iso_code ?? record.registered_country?.iso_code ?? null,
      continent: record.continent?.code ?? null,
      city: record.city?.names?.en ?? null,
      latitude: record.location?.latitude ?? null,
      longitude: record.location?.longitude ?? null,
    };
  }
}
