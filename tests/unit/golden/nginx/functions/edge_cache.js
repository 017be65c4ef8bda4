// Edgeplane: the origin hop's header filter (rendered; do not edit)
var crypto = require('crypto');
var fs = require('fs');

var SAFE = {GET: 1, HEAD: 1, OPTIONS: 1, TRACE: 1};
var DAY = 86400;
var MAX_AGE = 2147483648;
var MONTHS = {Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9,
              Nov: 10, Dec: 11};
var DAY3 = '(Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
var TIME = '(\\d\\d):(\\d\\d):(\\d\\d)';
// names are case-sensitive in RFC 9110; accepted in any case, as most caches do
var FIXDATE = new RegExp('^' + DAY3 + ', (\\d\\d) ([a-z]{3}) (\\d{4}) ' + TIME + ' GMT$', 'i');
var RFC850 = new RegExp('^(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), '
                        + '(\\d\\d)-([a-z]{3})-(\\d\\d) ' + TIME + ' GMT$', 'i');
var ASCTIME = new RegExp('^' + DAY3 + ' ([a-z]{3}) ([ \\d]\\d) ' + TIME + ' (\\d{4})$', 'i');

function httpDate(text) {
    // seconds since the epoch, or null (RFC 9110 5.6.7: IMF-fixdate and the two obsolete forms)
    if (!text) return null;
    var m = FIXDATE.exec(text), d, mon, y, hh, mm, ss;
    if (m) { d = m[2]; mon = m[3]; y = +m[4]; hh = m[5]; mm = m[6]; ss = m[7]; }
    else if ((m = RFC850.exec(text))) {
        d = m[2]; mon = m[3]; y = +m[4]; hh = m[5]; mm = m[6]; ss = m[7];
        y += (y + 2000 > new Date().getUTCFullYear() + 50) ? 1900 : 2000;
    } else if ((m = ASCTIME.exec(text))) {
        mon = m[2]; d = m[3].trim(); hh = m[4]; mm = m[5]; ss = m[6]; y = +m[7];
    } else return null;
    mon = mon[0].toUpperCase() + mon.slice(1).toLowerCase();
    if (!(mon in MONTHS)) return null;
    var t = Date.UTC(y, MONTHS[mon], +d, +hh, +mm, +ss);
    return isNaN(t) ? null : Math.floor(t / 1000);
}

function fields(r, name) {
    var out = [];
    var lower = name.toLowerCase();
    r.rawHeadersOut.forEach(function (h) {
        if (h[0].toLowerCase() === lower) out.push(h[1]);
    });
    return out;
}

function directives(text) {
    // a Cache-Control (or Surrogate-Control) list: lower-case name -> value (true without one)
    var out = {};
    text.split(',').forEach(function (part) {
        var p = part.trim();
        if (!p) return;
        var i = p.indexOf('=');
        var name = (i < 0 ? p : p.slice(0, i)).toLowerCase();
        if (name in out || /\s/.test(name)) return;  // "max-age =1": not a directive
        var v = i < 0 ? true : p.slice(i + 1);
        if (typeof v === 'string' && v.length > 1 && v[0] === '"' && v[v.length - 1] === '"') {
            v = v.slice(1, -1);
        }
        out[name] = v;
    });
    return out;
}

function sfDictionary(text) {
    // RFC 8941 dictionary as RFC 9213 uses it; null when the field is not a valid one
    var out = {};
    var members = text.split(',');
    for (var i = 0; i < members.length; i++) {
        var m = members[i].replace(/^[ \t]+|[ \t]+$/g, '');
        if (!m) return null;
        var semi = m.indexOf(';');
        if (semi >= 0) m = m.slice(0, semi);
        var eq = m.indexOf('=');
        var key = eq < 0 ? m : m.slice(0, eq);
        if (!/^[a-z*][a-z0-9_.*-]*$/.test(key)) return null;
        var v = true;
        if (eq >= 0) {
            var raw = m.slice(eq + 1);
            if (/^-?\d{1,15}$/.test(raw)) v = parseInt(raw, 10);
            else if (/^-?\d{1,12}\.\d{1,3}$/.test(raw)) v = {decimal: raw};
            else if (/^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"$/.test(raw)) v = {string: raw};
            else if (/^[A-Za-z*][!#$%&'*+.^_`|~:\/A-Za-z0-9-]*$/.test(raw)) v = {token: raw};
            else if (raw === '?1') v = true;
            else if (raw === '?0') v = false;
            else return null;
        }
        out[key] = v;
    }
    var ints = ['max-age', 's-maxage', 'stale-if-error', 'stale-while-revalidate'];
    for (var j = 0; j < ints.length; j++) {
        var x = out[ints[j]];
        if (x !== undefined && (typeof x !== 'number' || x < 0)) return null;
    }
    return out;
}

function seconds(v) {
    // a delta-seconds directive value: a number (capped), or null when absent or malformed
    if (typeof v === 'number') return Math.min(v, MAX_AGE);
    if (typeof v !== 'string' || !/^\d+$/.test(v)) return null;
    return Math.min(parseInt(v, 10), MAX_AGE);
}

function cacheFile(r, key) {
    var hex = crypto.createHash('md5').update(key).digest('hex');
    return r.variables.edge_cache_dir + '/' + hex.slice(31) + '/' + hex.slice(29, 31) + '/' + hex;
}

function unlink(r, key) {
    try { fs.unlinkSync(cacheFile(r, key)); } catch (e) { /* not stored */ }
}

function invalidate(r) {
    var key = r.variables.edge_hop_key;  // the hop's own (never a header's)
    if (!key) return;
    unlink(r, key);
    var parts = key.split('|');
    var host = r.headersIn['Host'] || '';
    ['Location', 'Content-Location'].forEach(function (name) {
        var target = fields(r, name)[0];
        if (!target) return;
        var m = /^(?:https?:\/\/([^\/?#]*))?(\/[^?#]*)?(?:\?([^#]*))?/i.exec(target);
        if (!m || !m[2] || (m[1] !== undefined && m[1].toLowerCase() !== host.toLowerCase())) {
            return;
        }
        unlink(r, parts[0] + '|' + (parts[1] ? host : '') + '|' + m[2] + '|' + (m[3] || '') + '|');
    });
}

function firstAge(r) {
    var age = fields(r, 'Age')[0];
    if (age === undefined) return 0;
    age = age.split(',')[0].trim();
    return /^\d+$/.test(age) ? Math.min(parseInt(age, 10), MAX_AGE) : 0;
}

function freshness(r, now) {
    // {store: false} | {lifetime: s or null, forbid: bool, sie: s or null, swr: s or null}
    var d = null;
    var cdn = fields(r, 'CDN-Cache-Control');
    if (cdn.length) d = sfDictionary(cdn.join(', '));
    var targeted = d !== null;
    if (!targeted) {
        var surrogate = fields(r, 'Surrogate-Control');
        if (surrogate.length) {
            d = directives(surrogate.join(','));
            targeted = 'max-age' in d || 'no-store' in d;
        }
    }
    if (!targeted) d = directives(fields(r, 'Cache-Control').join(','));
    if ('no-store' in d || 'private' in d) return {store: false};
    var out = {lifetime: null, forbid: false, sie: seconds(d['stale-if-error']),
               swr: seconds(d['stale-while-revalidate'])};
    out.forbid = 'must-revalidate' in d || 'proxy-revalidate' in d || 's-maxage' in d;
    if ('no-cache' in d) {
        out.lifetime = 0;
        out.forbid = true;
    } else if ('s-maxage' in d) {
        out.lifetime = seconds(d['s-maxage']);
        if (out.lifetime === null) out.lifetime = 0;
    } else if ('max-age' in d) {
        out.lifetime = seconds(d['max-age']);
        if (out.lifetime === null) out.lifetime = 0;
    } else if (!targeted) {
        var expires = fields(r, 'Expires');
        if (expires.length) {
            var until = httpDate(expires[0]);
            var date = httpDate(fields(r, 'Date')[0]);
            out.lifetime = until === null ? 0 : Math.max(0, until - (date === null ? now : date));
        }
    }
    if (!targeted && r.headersIn['Authorization'] !== undefined
        && !('public' in d || 's-maxage' in d || 'must-revalidate' in d)) {
        return {store: false};
    }
    return out;
}

function moveAside(r, name, aside) {
    var values = fields(r, name);
    if (!values.length) return;
    delete r.headersOut[name];
    r.headersOut[aside] = values.join(', ');
}

function stored(r) {
    var s = r.status;
    var stale = (r.headersIn['X-Edge-Stale'] || '').split(',');
    if (!SAFE[r.method] && s < 400) invalidate(r);
    var listed = (r.variables.upstream_http_connection || '').split(',');
    listed.forEach(function (name) {
        name = name.trim();
        if (name && !/^(close|keep-alive)$/i.test(name)) delete r.headersOut[name];
    });
    if (stale.indexOf('override') >= 0) {
        delete r.headersOut['Surrogate-Control'];
        return;
    }
    var now = Math.floor(Date.now() / 1000);
    var vary = fields(r, 'Vary').join(',');
    var f = /(^|,)\s*\*\s*(,|$)/.test(vary) ? {store: false} : freshness(r, now);
    delete r.headersOut['Surrogate-Control'];
    moveAside(r, 'Cache-Control', 'X-Edge-CC');
    moveAside(r, 'Expires', 'X-Edge-Expires');
    if (fields(r, 'X-Accel-Expires').length) return;  // the origin's own word for nginx
    if (f.store === false) {
        r.headersOut['X-Accel-Expires'] = '0';
        return;
    }
    // Cache-Control first: nginx skips it when X-Accel-Expires came before
    var cc = [];
    var sie = f.sie !== null ? f.sie : (!f.forbid && stale.indexOf('sie') >= 0 ? DAY : null);
    var swr = f.swr !== null ? f.swr : (!f.forbid && stale.indexOf('swr') >= 0 ? DAY : null);
    if (swr !== null) cc.push('stale-while-revalidate=' + swr);
    if (sie !== null) cc.push('stale-if-error=' + sie);
    if (cc.length) r.headersOut['Cache-Control'] = cc.join(', ');
    if (f.lifetime !== null) {
        var date = httpDate(fields(r, 'Date')[0]);
        var age = Math.max(firstAge(r), date === null ? 0 : now - date);
        // the last second of freshness (fresh while age < lifetime); nginx stores a response
        // whose time is past as stale (0 would mean "do not store")
        r.headersOut['X-Accel-Expires'] = '@' + Math.max(1, now + f.lifetime - age - 1);
    }
}

export default {stored};
