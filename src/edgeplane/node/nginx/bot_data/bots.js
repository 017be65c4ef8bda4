/*
 * Edgeplane's bot protection at the edge (nginx's njs module, 0.7): shipped as it is, never
 * rendered. nginx calls it only for the requests of a site with bot protection whose client is
 * in a class (render_bots.py's maps decide that natively), so other requests never start a
 * JavaScript VM.
 *
 * verdict (js_set $bot_js): "<class>:<action>" or "" (nothing to do), where class is bad,
 *   impostor, automated, behaviour or good and action is detect, challenge, pass (a valid
 *   challenge cookie) or block.
 * stop (js_content of @bot_stop): the 403 of a block, or the site's challenge.
 *
 * The cookie: "c.<expiry>.<sig>" (cookie challenge) or "j.<expiry>.<sig>.<nonce>" (JavaScript
 * challenge), sig = the first 32 hex digits of HMAC-SHA256(site key, "<kind>|<expiry>|<client
 * address>|<user agent>"); for "j", SHA-256 of the whole value must start with <difficulty>
 * zero bits. edgeplane.node.nginx.bot_cookie holds the same algorithm in Python.
 */

var crypto = require('crypto');

var COOKIE = 'edgeplane_bot';
var SKEW_S = 60;

function conf(r) {
    // $bot_conf: "<mode> <automated> <behaviour> <cookie|javascript> <ttl s> <difficulty>"
    var p = (r.variables.bot_conf || '').split(' ');
    return {
        mode: p[0] || 'off',
        automated: p[1] || 'off',
        behaviour: p[2] || 'off',
        kind: p[3] === 'cookie' ? 'c' : 'j',
        ttl: parseInt(p[4], 10) || 3600,
        bits: parseInt(p[5], 10) || 0
    };
}

function sign(r, kind, expiry) {
    var v = r.variables;
    var text = kind + '|' + expiry + '|' + v.remote_addr + '|' + (v.http_user_agent || '');
    return crypto.createHmac('sha256', v.bot_key).update(text).digest('hex').slice(0, 32);
}

function same(a, b) {
    if (a.length !== b.length) {
        return false;
    }
    var diff = 0;
    for (var i = 0; i < a.length; i++) {
        diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return diff === 0;
}

function zeroBits(hex, bits) {
    // the first <bits> bits of a hex digest are zero
    var whole = Math.floor(bits / 4);
    for (var i = 0; i < whole; i++) {
        if (hex.charAt(i) !== '0') {
            return false;
        }
    }
    var rest = bits % 4;
    return rest === 0 || (parseInt(hex.charAt(whole), 16) >> (4 - rest)) === 0;
}

function passed(r, c) {
    var value = r.variables.cookie_edgeplane_bot;
    if (!value || value.length > 200) {
        return false;
    }
    var p = value.split('.');
    if (p[0] !== c.kind || p.length !== (c.kind === 'c' ? 3 : 4)) {
        return false;
    }
    if (!/^[0-9]{1,12}$/.test(p[1])) {
        return false;
    }
    var expiry = parseInt(p[1], 10);
    var now = Math.floor(Date.now() / 1000);
    if (expiry <= now || expiry > now + c.ttl + SKEW_S) {
        return false;
    }
    if (!same(p[2], sign(r, c.kind, p[1]))) {
        return false;
    }
    if (c.kind === 'j') {
        if (!/^[0-9]{1,16}$/.test(p[3])) {
            return false;
        }
        var digest = crypto.createHash('sha256').update(value).digest('hex');
        return zeroBits(digest, c.bits);
    }
    return true;
}

function bytesOf(address) {
    // an IPv4 or IPv6 address -> its bytes (4 or 16), or null
    if (address.indexOf(':') < 0) {
        var q = address.split('.');
        if (q.length !== 4) {
            return null;
        }
        var out = [];
        for (var i = 0; i < 4; i++) {
            if (!/^[0-9]{1,3}$/.test(q[i]) || parseInt(q[i], 10) > 255) {
                return null;
            }
            out.push(parseInt(q[i], 10));
        }
        return out;
    }
    var tail = [];
    var last = address.lastIndexOf(':');
    if (address.indexOf('.', last) > 0) {  // ::ffff:192.0.2.1
        tail = bytesOf(address.slice(last + 1));
        if (tail === null) {
            return null;
        }
        address = address.slice(0, last + 1) + '0:0';
    }
    var halves = address.split('::');
    if (halves.length > 2) {
        return null;
    }
    var head = halves[0] ? halves[0].split(':') : [];
    var back = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
    var groups = head;
    if (halves.length === 2) {
        var missing = 8 - head.length - back.length;
        if (missing < 1) {
            return null;
        }
        for (var m = 0; m < missing; m++) {
            groups.push('0');
        }
        groups = groups.concat(back);
    }
    if (groups.length !== 8) {
        return null;
    }
    var bytes = [];
    for (var g = 0; g < 8; g++) {
        if (!/^[0-9a-fA-F]{1,4}$/.test(groups[g])) {
            return null;
        }
        var n = parseInt(groups[g], 16);
        bytes.push(n >> 8, n & 255);
    }
    if (tail.length) {
        bytes = bytes.slice(0, 12).concat(tail);
    }
    return bytes;
}

function inRange(address, cidr) {
    var slash = cidr.indexOf('/');
    var net = bytesOf(cidr.slice(0, slash));
    var bits = parseInt(cidr.slice(slash + 1), 10);
    if (net === null || address.length !== net.length) {
        return false;
    }
    for (var i = 0; bits > 0; i++, bits -= 8) {
        var mask = bits >= 8 ? 255 : (255 << (8 - bits)) & 255;
        if ((address[i] & mask) !== (net[i] & mask)) {
            return false;
        }
    }
    return true;
}

function inRanges(address, ranges) {
    var bytes = bytesOf(address);
    if (bytes === null) {
        return false;
    }
    var list = ranges.split(' ');
    for (var i = 0; i < list.length; i++) {
        if (list[i] && inRange(bytes, list[i])) {
            return true;
        }
    }
    return false;
}

function verdict(r) {
    var v = r.variables;
    var klass = v.bot_class;
    if (!klass) {
        return '';
    }
    var c = conf(r);
    if (klass === 'claim') {
        if (inRanges(v.remote_addr, v.bot_claim)) {
            return 'good:pass';
        }
        klass = 'impostor';
    }
    var action = c.mode;
    if (klass === 'automated') {
        action = c.automated;
    } else if (klass === 'behaviour') {
        action = c.behaviour;
    }
    if (action === 'off') {
        return '';
    }
    if (action === 'challenge' && passed(r, c)) {
        action = 'pass';
    }
    return klass + ':' + action;
}

// SHA-256 of a string of code units below 256, in the challenge page (crypto.subtle needs a
// secure context and is asynchronous: this runs over plain HTTP too, a few thousand a frame).
var SHA256 = [
    'var K=[],H0=[];(function(){function f(x){return(x-Math.floor(x))*4294967296|0}',
    'for(var n=2,c=0;c<64;n++){for(var j=2;j*j<=n&&n%j;j++);',
    'if(j*j>n){if(c<8)H0[c]=f(Math.sqrt(n));K[c++]=f(Math.pow(n,1/3))}}})();',
    'function sha256(s){var w,a,H=H0.slice(0),b=[],i,j,l=s.length*8;',
    's+="\\x80";while(s.length%64!==56)s+="\\x00";',
    'for(i=0;i<s.length;i++)b[i>>2]|=s.charCodeAt(i)<<(3-i%4)*8;b.push(0,l);',
    'for(j=0;j<b.length;j+=16){w=b.slice(j,j+16);a=H.slice(0);',
    'for(i=0;i<64;i++){var x=w[i-15],y=w[i-2],e=a[4],g=a[0];',
    'if(i>15)w[i]=(w[i-16]+((x>>>7|x<<25)^(x>>>18|x<<14)^(x>>>3))+w[i-7]',
    '+((y>>>17|y<<15)^(y>>>19|y<<13)^(y>>>10)))|0;',
    'var t1=a[7]+((e>>>6|e<<26)^(e>>>11|e<<21)^(e>>>25|e<<7))+(e&a[5]^~e&a[6])+K[i]+w[i];',
    'var t2=((g>>>2|g<<30)^(g>>>13|g<<19)^(g>>>22|g<<10))+(g&a[1]^g&a[2]^a[1]&a[2]);',
    'a=[(t1+t2)|0].concat(a);a[4]=(a[4]+t1)|0;a.pop()}',
    'for(i=0;i<8;i++)H[i]=(H[i]+a[i])|0}',
    'var o="";for(i=0;i<8;i++)o+=("0000000"+(H[i]>>>0).toString(16)).slice(-8);return o}'
].join('');

function page(challenge, bits, ttl, secure) {
    var script = SHA256 +
        'var c="' + challenge + '",b=' + bits + ',n=0;' +
        'function ok(h){for(var i=0;i<b;i++){if(parseInt(h.charAt(i>>2),16)>>(3-i%4)&1)' +
        'return false}return true}' +
        'while(!ok(sha256(c+"."+n)))n++;' +
        'document.cookie="' + COOKIE + '="+c+"."+n+"; path=/; max-age=' + ttl +
        '; samesite=lax' + (secure ? '; secure' : '') + '";' +
        'document.getElementById("s").textContent="Checked; loading the page...";' +
        'location.reload();';
    return '<!doctype html>\n<html><head><meta charset="utf-8">' +
        '<meta name="robots" content="noindex">' +
        '<title>Checking your browser</title></head>\n<body>\n' +
        '<p id="s">Checking your browser before the page loads...</p>\n' +
        '<noscript><p>This site needs JavaScript to check your browser.</p></noscript>\n' +
        '<script>' + script + '</script>\n</body></html>\n';
}

function stop(r) {
    var verdict = r.variables.bot_verdict || '';
    r.headersOut['Cache-Control'] = 'no-store';
    if (verdict.slice(-6) === ':block') {
        r.headersOut['Content-Type'] = 'text/plain';
        r.return(403, 'blocked\n');
        return;
    }
    var c = conf(r);
    var expiry = String(Math.floor(Date.now() / 1000) + c.ttl);
    var secure = r.variables.https === 'on';
    var token = c.kind + '.' + expiry + '.' + sign(r, c.kind, expiry);
    if (c.kind === 'c') {
        r.headersOut['Set-Cookie'] = COOKIE + '=' + token + '; Path=/; Max-Age=' + c.ttl +
            '; HttpOnly; SameSite=Lax' + (secure ? '; Secure' : '');
        r.headersOut['X-Edgeplane-Challenge'] = 'cookie';
        r.return(307, r.variables.request_uri);
        return;
    }
    r.headersOut['Content-Type'] = 'text/html; charset=utf-8';
    r.headersOut['X-Edgeplane-Challenge'] = 'javascript';
    r.return(403, page(token, c.bits, c.ttl, secure));
}

export default {verdict, stop};
