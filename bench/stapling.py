"""What OCSP stapling costs an edge node: N certificates, all stapled against none.

Run from the repository root::

    .venv/bin/python bench/stapling.py [--quick] [--counts 100,1000] [--changes 3] [--markdown]

nginx 1.22 staples only certificates it loads with its configuration, so each stapled
certificate is a ``server`` block of its own (``node/nginx/render_stapling.py``); the others are
chosen per handshake by the shared server. For each count N: N leaves of one throwaway CA (one
site naming them all), once without staples and once each with a good OCSP response, applied
to a real nginx through ``NginxEngine`` (``NodeLocal.max_stapled`` = N); then ``--changes``
configuration changes (a site added or removed: a reload each). Figures: the apply time of a
change (median) and nginx's PSS (master and workers), stapled against none as the reference.

Then the control plane's side: the staple job (``certificates/stapling.py``) after a bulk load
of ``--backlog`` certificates, against 10 as the reference. One internal-CA certificate is
made through ``domains.add`` in a fresh SQLite home and copied into the other rows; the job
runs (``stapling.run_once``, at most 500 certificates a run) until each has its staple row.
Figure: the process's CPU time per 1,000 certificates, without an OCSP URL (the default,
``EDGEPLANE_INTERNAL_OCSP`` off: nothing to fetch, the job's database work alone) and with the
control plane's own responder named (every certificate asked in process).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from common import BenchRun, log, signals_raise, table  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from origins import Origin, start_origin  # noqa: E402
from processes import free_port  # noqa: E402

from edgeplane.node.nginx.engine import NginxEngine  # noqa: E402
from edgeplane.node.nginx.local import LocalHealth, NodeLocal  # noqa: E402
from edgeplane.node.nginx.memory import tree_pss_mib  # noqa: E402
from edgeplane.protocol.config import (  # noqa: E402
    BackendSpec,
    CertSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
)


def certificates(n: int) -> tuple[list[CertSpec], list[CertSpec]]:
    """``n`` leaves without and with a staple (one key: the cost is nginx's, not OpenSSL's)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    plain: list[CertSpec] = []
    stapled: list[CertSpec] = []
    for i in range(n):
        name = f"d{i}.stapling.test"
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(1000 + i)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
        spec = CertSpec(
            id=hashlib.sha256(pem.encode()).hexdigest(),
            names=(name,),
            cert_pem=pem,
            key_pem=key_pem,
            not_after=(now + dt.timedelta(days=30)).isoformat(),
        )
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response(cert=leaf, issuer=ca, algorithm=hashes.SHA1(),
                          cert_status=ocsp.OCSPCertStatus.GOOD, this_update=now,
                          next_update=now + dt.timedelta(days=4), revocation_time=None,
                          revocation_reason=None)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        der = response.public_bytes(serialization.Encoding.DER)
        plain.append(spec)
        stapled.append(spec.model_copy(update={"ocsp_staple": base64.b64encode(der).decode()}))
    return plain, stapled


def measure(certs: list[CertSpec], origin: Origin, changes: int, base: Path) -> tuple[float, float]:
    """(median apply of a change in ms, nginx PSS in MiB) with ``certs`` on one node."""
    local = NodeLocal(
        prefix=base / "nginx",
        node_name="stapling-1",
        http_port=free_port(),
        https_port=free_port(),
        max_stapled=len(certs),
    )
    p = PoolSpec(
        id="origin.p1",
        algorithm="round_robin",
        backends=(BackendSpec(key=origin.name, host="127.0.0.1", port=origin.port),),
    )
    sites = (SiteSpec(id="p1", domains=tuple(c.names[0] for c in certs), pool=p.id),)
    more = (*sites, SiteSpec(id="p2", domains=("extra.stapling.test",), pool=p.id))
    node = NodeSpec(id="n1", name="stapling-1", region="local")
    engine = NginxEngine(local)
    try:
        times = []
        for rev in range(1, 2 + changes):
            config = EdgeConfig(
                revision=rev, node=node, sites=more if rev % 2 == 0 else sites, pools=(p,),
                certs=tuple(certs),
            )  # fmt: skip
            result = engine.apply(config, LocalHealth())
            if not result.ok:
                raise RuntimeError(f"apply: {result.error}")
            if rev > 1:
                times.append(result.duration_ms)
        pid = engine.process.pid
        pss = tree_pss_mib(pid)[0] if pid else float("nan")
    finally:
        engine.stop()
    return float(statistics.median(times)), pss


def staple_backlog(base: Path, n: int, responder: bool) -> float:
    """CPU seconds of the staple runs that give each of ``n`` certificates its staple row."""
    from sqlalchemy import text

    from edgeplane.certificates import stapling
    from edgeplane.cli.serve import _prepare
    from edgeplane.services import domains
    from edgeplane.store.actor import LOCAL

    settings, db, _ = _prepare(base)
    if responder:  # as EDGEPLANE_INTERNAL_OCSP=1 with a public URL gives it
        db.ocsp_url = "http://cp.stapling.test/ocsp"
    try:
        with db.transaction(LOCAL, "default") as tx:
            domains.add(tx, {"domain": "shop.stapling.test"}, settings)
        with db.engine.begin() as conn:
            row = dict(conn.execute(text("SELECT * FROM certificates")).mappings().one())
            cols = ", ".join(row)
            marks = ", ".join(f":{c}" for c in row)
            conn.execute(
                text(f"INSERT INTO certificates ({cols}) VALUES ({marks})"),
                [{**row, "id": f"cert-bulk-{i:06d}"} for i in range(n - 1)],
            )
            conn.execute(text("DELETE FROM ocsp_staples"))  # the first one, made with it
        cpu = time.process_time()
        for _ in range(n // stapling.MAX_PER_RUN + 3):
            stapling.run_once(db)
            with db.engine.connect() as conn:
                done = conn.execute(text("SELECT count(*) FROM ocsp_staples")).scalar_one()
            if done >= n:
                return time.process_time() - cpu
        raise RuntimeError(f"{done} of {n} certificates have a staple row")
    finally:
        db.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="100,1000", help="certificates per node")
    ap.add_argument("--changes", type=int, default=3, help="configuration changes per count")
    ap.add_argument(
        "--backlog", type=int, default=10_000, help="certificates of the control plane's part"
    )
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="the short mode: 20 certificates, one change, a backlog of 600",
    )
    args = ap.parse_args()
    if args.quick:
        args.counts, args.changes, args.backlog = "20", 1, 600
    counts = [int(c) for c in str(args.counts).split(",") if c]
    run = BenchRun("stapling")
    rows: list[list[str]] = []
    try:
        with signals_raise():
            origin = start_origin("stapling-bench")
            run.cleanup.add(origin.terminate)
            for n in counts:
                plain, stapled = certificates(n)
                ref_ms, ref_pss = measure(plain, origin, args.changes, run.tmp / f"none-{n}")
                log(f"{n} certificates, no staple: apply {ref_ms:,.0f} ms, PSS {ref_pss:,.0f} MiB")
                ms, pss = measure(stapled, origin, args.changes, run.tmp / f"stapled-{n}")
                log(f"{n} certificates, stapled: apply {ms:,.0f} ms, PSS {pss:,.0f} MiB")
                rows.append([f"{n:,} certificates: apply of a change, ms (stapled vs none)",
                             f"{ms:,.0f}", f"{ref_ms:,.0f}", f"{ms / ref_ms:.2f}"])  # fmt: skip
                rows.append([f"{n:,} certificates: nginx PSS, MiB (stapled vs none)",
                             f"{pss:,.0f}", f"{ref_pss:,.0f}", f"{pss / ref_pss:.2f}"])  # fmt: skip
            for responder in (False, True):
                how = "own responder" if responder else "no OCSP URL"
                tag = "own" if responder else "none"
                ref = staple_backlog(run.tmp / f"cp-{tag}-10", 10, responder)
                got = staple_backlog(run.tmp / f"cp-{tag}-{args.backlog}", args.backlog, responder)
                per, ref_per = got / args.backlog * 1000, ref / 10 * 1000
                log(f"staple backlog, {how}: {args.backlog:,} in {got:.2f} s CPU, 10: {ref:.3f} s")
                rows.append([f"control plane: staple runs over {args.backlog:,} certificates "
                             f"({how}), CPU s per 1,000 (vs 10)", f"{per:,.2f}",
                             f"{ref_per:,.2f}", f"{per / ref_per:.2f}"])  # fmt: skip
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    finally:
        run.close()
    print(table(rows, args.markdown))
    return run.status()


if __name__ == "__main__":
    sys.exit(main())
