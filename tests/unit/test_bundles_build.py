"""build_bundle: the manifest, content types, fingerprints, precompression, determinism."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import tarfile
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest

from edgeplane.bundles import BundleError, build_bundle, content_type, is_fingerprinted
from edgeplane.bundles import build as build_module

JS = b"".join(b"export function f%d(a, b) { return a + b * %d; }\n" % (i, i) for i in range(200))
CSS = b"".join(b".c%d { margin: %dpx; color: #333; }\n" % (i, i) for i in range(100))


def site(root: Path, files: dict[str, bytes]) -> list[str]:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return sorted(files)


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out[m.name] = f.read()
        return out


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    return d


# -- content types and fingerprints ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("a/app.js", "text/javascript"),
        ("m.mjs", "text/javascript"),
        ("x.wasm", "application/wasm"),
        ("d.json", "application/json"),
        ("i.svg", "image/svg+xml"),
        ("site.webmanifest", "application/manifest+json"),
        ("app.js.map", "application/json"),
        ("INDEX.HTML", "text/html"),
        ("s.css", "text/css"),
        ("f.woff2", "font/woff2"),
        ("p.png", "image/png"),
        ("noext", "application/octet-stream"),
        ("x.unknownext", "application/octet-stream"),
        (".htaccess", "application/octet-stream"),
        ("data:x.js", "text/javascript"),  # a name, not a URL
    ],
)
def test_content_types(path: str, ctype: str) -> None:
    assert content_type(path) == ctype


@pytest.mark.parametrize(
    "name",
    [
        "app.3f2a9c1b.js",
        "main-BxK9fQ2a.css",
        "chunk_7d9e1a2b3c.mjs",
        "assets/index-D-Pb9vYx.js",  # rollup's base64url hashes may hold - and _
        "chunk-5XQ7KMNT.js",  # esbuild
        "framework-2c79e2a64abdb08b.js",  # next.js
        "a1b2c3d4e5f6a7b8c9d0.png",  # webpack's [hash][ext]
        "_nuxt/CwzZ2qm7.js",
        "x/y/main.a1b2c3d4e5f6g7h8.js",
    ],
)
def test_fingerprinted_names(name: str) -> None:
    assert is_fingerprinted(name)


@pytest.mark.parametrize(
    "name",
    [
        "index.html",
        "logo.png",
        "about-us.html",
        "jquery-3.7.1.min.js",
        "favicon-32x32.png",
        "apple-touch-icon-1024x1024.png",
        "android-chrome-512x512.png",
        "chapter10.html",
        "page-chapter10.html",
        "IMG_20240101_123456.jpg",  # digits only: a date, not a hash
        "report_v2_final.pdf",
        "Roboto-Regular.woff2",
        "bootstrap-5.3.2.min.css",
        ".htaccess",
        "3f2a9c1b",  # nothing but the would-be hash
        "app.js",
    ],
)
def test_names_that_are_not_fingerprinted(name: str) -> None:
    assert not is_fingerprinted(name)


# -- the archive -----------------------------------------------------------------------------


def test_manifest_and_members(src: Path, tmp_path: Path) -> None:
    png = random.Random(1).randbytes(3000)
    html = b"<h1>" + b"hello " * 100 + b"</h1>"
    files = site(src, {"index.html": html, "assets/app.3f2a9c1b.js": JS, "logo.png": png,
                       "tiny.css": b"a{}"})  # fmt: skip
    out = tmp_path / "node.tar"
    built = build_bundle(src, files, out)
    data = members(out)
    with tarfile.open(out) as tar:
        infos = tar.getmembers()
    assert infos[0].name == "manifest.json"
    names = [m.name for m in infos[1:]]
    assert names == sorted(names)
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.mode == 0o644 for m in infos)
    assert all(m.uname == "" and m.gname == "" and m.isreg() for m in infos)
    manifest = json.loads(data["manifest.json"])
    assert manifest == built.manifest
    assert (
        data["manifest.json"]
        == json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    )
    assert manifest["format"] == 1
    assert (
        manifest["total_bytes"]
        == built.source_bytes
        == sum(len((src / f).read_bytes()) for f in files)
    )
    entry = manifest["files"]["assets/app.3f2a9c1b.js"]
    assert entry["sha256"] == hashlib.sha256(JS).hexdigest() and entry["size"] == len(JS)
    assert entry["type"] == "text/javascript" and entry["immutable"] is True
    assert entry["gzip"]["size"] == len(data["files/assets/app.3f2a9c1b.js.gz"])
    assert (
        entry["br"]["sha256"] == hashlib.sha256(data["files/assets/app.3f2a9c1b.js.br"]).hexdigest()
    )
    assert manifest["files"]["index.html"]["immutable"] is False
    # Random bytes of an image type: never compressed. Under 256 bytes: not either.
    assert (
        manifest["files"]["logo.png"]["gzip"] is None
        and manifest["files"]["logo.png"]["br"] is None
    )
    assert manifest["files"]["tiny.css"]["gzip"] is None and "files/tiny.css.gz" not in data
    for f in files:
        assert data[f"files/{f}"] == (src / f).read_bytes()
    assert built.files == 4 and built.compressed_files == 2
    assert built.size == out.stat().st_size
    assert built.hash == hashlib.sha256(out.read_bytes()).hexdigest()


def test_variants_decompress_to_the_original(src: Path, tmp_path: Path) -> None:
    files = site(src, {"a.js": JS, "b/c.css": CSS, "d.svg": b"<svg>" + b"<g/>" * 200 + b"</svg>"})
    out = tmp_path / "node.tar"
    build_bundle(src, files, out)
    data = members(out)
    for f in files:
        assert gzip.decompress(data[f"files/{f}.gz"]) == data[f"files/{f}"]
        assert brotli.decompress(data[f"files/{f}.br"]) == data[f"files/{f}"]
        assert len(data[f"files/{f}.br"]) < 0.95 * len(data[f"files/{f}"])
    assert data["files/a.js.gz"][4:8] == b"\0\0\0\0"  # gzip mtime 0


def test_a_variant_that_saves_too_little_is_dropped(src: Path, tmp_path: Path) -> None:
    noise = random.Random(2).randbytes(5000)  # random bytes in a compressible type
    built = build_bundle(src, site(src, {"noise.js": noise}), tmp_path / "n.tar")
    entry = built.manifest["files"]["noise.js"]
    assert entry["gzip"] is None and entry["br"] is None
    assert built.compressed_files == 0
    assert list(members(tmp_path / "n.tar")) == ["manifest.json", "files/noise.js"]


def test_the_bundles_own_variants_are_kept_and_not_generated(src: Path, tmp_path: Path) -> None:
    own_gz = gzip.compress(JS, compresslevel=9, mtime=12345)
    files = site(src, {"app.js": JS, "app.js.gz": own_gz})
    out = tmp_path / "n.tar"
    built = build_bundle(src, files, out)
    entry = built.manifest["files"]["app.js"]
    assert entry["gzip"] is None  # nginx serves the bundle's own app.js.gz
    assert entry["br"] is not None
    assert built.manifest["files"]["app.js.gz"]["type"] == "application/gzip"
    assert built.manifest["files"]["app.js.gz"]["gzip"] is None
    data = members(out)
    assert data["files/app.js.gz"] == own_gz
    assert sorted(data) == ["files/app.js", "files/app.js.br", "files/app.js.gz", "manifest.json"]


def test_same_inputs_give_the_same_archive(src: Path, tmp_path: Path) -> None:
    files = site(src, {"index.html": b"<p>" * 300, "a/app.js": JS, "z.css": CSS,
                       "img.png": random.Random(3).randbytes(4000), "dé jà/ü.txt": b"unicode " * 50,
                       "long/" + "n" * 150 + ".js": JS})  # fmt: skip
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    for f in files:  # other mtimes and modes must not matter
        os.utime(copy / f, (1_000_000, 1_000_000))
        os.chmod(copy / f, 0o600)
    one = build_bundle(src, files, tmp_path / "one.tar")
    two = build_bundle(copy, list(reversed(files)), tmp_path / "two.tar")
    assert one.hash == two.hash
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    assert members(tmp_path / "one.tar")["files/dé jà/ü.txt"] == b"unicode " * 50
    (copy / "z.css").write_bytes(CSS + b"/* changed */")
    assert build_bundle(copy, files, tmp_path / "three.tar").hash != one.hash


def test_the_process_pool_gives_the_same_archive_as_one_process(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(4)
    files = site(src, {f"d{i % 7}/f{i}.js": JS[: rng.randint(300, len(JS))] + b"%d" % i
                       for i in range(60)})  # fmt: skip
    inline = build_bundle(src, files, tmp_path / "inline.tar", workers=1)
    monkeypatch.setattr(build_module, "PARALLEL_MIN_BYTES", 0)

    def no_fallback(jobs: object) -> None:
        raise AssertionError("the pool did not run")

    monkeypatch.setattr(build_module, "_inline", no_fallback)
    pooled = build_bundle(src, files, tmp_path / "pooled.tar", workers=2)
    assert pooled.hash == inline.hash and pooled.compressed_files == 60
    assert not [p for p in tmp_path.iterdir() if ".build-" in p.name]  # the staging is gone


def test_long_and_unicode_names_survive_the_tar(src: Path, tmp_path: Path) -> None:
    names = ["a" * 99 + ".js", "d/" * 70 + "f.js", "x" * 120 + "/" + "y" * 90, "ünï/cødé.txt",
             "p" * 200 + ".txt"]  # fmt: skip
    files = site(src, {n: n.encode() for n in names})
    build_bundle(src, files, tmp_path / "n.tar")
    data = members(tmp_path / "n.tar")
    for n in names:
        assert data[f"files/{n}"] == n.encode()


def test_bad_inputs_are_refused(src: Path, tmp_path: Path) -> None:
    site(src, {"a.js": b"1"})
    (src / "link.js").symlink_to(src / "a.js")
    with pytest.raises(BundleError, match="not a regular file"):
        build_bundle(src, ["a.js", "link.js"], tmp_path / "n.tar")
    with pytest.raises(BundleError, match="more than once"):
        build_bundle(src, ["a.js", "a.js"], tmp_path / "n.tar")
    with pytest.raises(BundleError, match="leave the bundle"):
        build_bundle(src, ["../a.js"], tmp_path / "n.tar")


def test_tar_header_is_tarfiles(tmp_path: Path) -> None:
    for name in ("files/a.js", "x" * 100, "d/" * 60 + "f.js", "é.js", "y" * 300):
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uname, info.gname = 77, 0, 0o644, "", ""
        fmt = tarfile.USTAR_FORMAT if name.isascii() and len(name) < 256 else tarfile.PAX_FORMAT
        expected: Any = info.tobuf(fmt, "utf-8", "surrogateescape")
        assert build_module.tar_header(name, 77) == expected, name
    stream = io.BytesIO()
    writer = build_module.TarWriter(stream)
    writer.add_bytes("one", b"1")
    writer.close()
    assert writer.size == len(stream.getvalue()) and writer.size % tarfile.RECORDSIZE == 0
    assert writer.sha256() == hashlib.sha256(stream.getvalue()).hexdigest()


# -- variants reused from an earlier archive -------------------------------------------------


def test_unchanged_files_take_their_variants_from_the_earlier_archive(
    src: Path, tmp_path: Path
) -> None:
    from edgeplane.bundles.reuse import Earlier

    files = site(src, {"app.js": JS, "style.css": CSS, "page.html": JS[:3000], "x.png": CSS})
    first = build_bundle(src, files, tmp_path / "first.tar", workers=1)
    kept = tmp_path / f"{first.hash}.tar"
    (tmp_path / "first.tar").rename(kept)
    # Changed: style.css; page.html gets a .gz of its own (its own variant is then not made).
    site(src, {"style.css": CSS + b".new { }\n", "page.html.gz": gzip.compress(JS[:3000])})
    files = sorted([*files, "page.html.gz"])
    earlier = Earlier.open(kept)
    assert earlier is not None
    again = build_bundle(src, files, tmp_path / "again.tar", workers=1, earlier=earlier)
    fresh = build_bundle(src, files, tmp_path / "fresh.tar", workers=1)
    # The same bytes as compressing everything: the same bundle.
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "fresh.tar").read_bytes()
    assert again.hash == fresh.hash and again.manifest == fresh.manifest
    assert again.reused_files == 1  # app.js (style.css changed, page.html's wants changed)
    assert fresh.reused_files == 0


def test_an_earlier_archive_that_is_not_what_its_name_says_is_not_used(
    src: Path, tmp_path: Path
) -> None:
    from edgeplane.bundles.reuse import Earlier

    files = site(src, {"app.js": JS})
    first = build_bundle(src, files, tmp_path / "first.tar", workers=1)
    data = bytearray((tmp_path / "first.tar").read_bytes())
    at = bytes(data).rindex(b"\x1f\x8b")  # inside the gzip variant
    data[at + 20] ^= 0x01
    (tmp_path / f"{first.hash}.tar").write_bytes(bytes(data))
    assert Earlier.open(tmp_path / f"{first.hash}.tar") is None
    assert Earlier.open(tmp_path / "missing.tar") is None


def test_the_earlier_archive_as_built_is_the_archive_as_read(src: Path, tmp_path: Path) -> None:
    from edgeplane.bundles.reuse import Earlier

    files = site(src, {"app.js": JS, "a/style.css": CSS, "x.png": CSS, "n/" + "d" * 120: JS})
    built = build_bundle(src, files, tmp_path / "b.tar", workers=1)
    kept = tmp_path / f"{built.hash}.tar"
    (tmp_path / "b.tar").rename(kept)
    read = Earlier.open(kept)
    assert read is not None and read.entries == Earlier.built(kept, built).entries
    assert any(e.gzip for e in read.entries.values())
