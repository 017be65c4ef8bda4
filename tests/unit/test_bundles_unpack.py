"""unpack: a node verifies the whole archive, then the bundle appears at once, or not at all."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from edgeplane.bundles import BuiltBundle, BundleError, build_bundle, unpack
from edgeplane.bundles.build import TarWriter, manifest_bytes

# The package's ``unpack`` is the function, which hides the module of the same name.
unpack_module = importlib.import_module("edgeplane.bundles.unpack")

JS = b"".join(b"export const v%d = %d * 2;\n" % (i, i) for i in range(300))


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, BuiltBundle]:
    src = tmp_path / "src"
    for name, data in {"index.html": b"<p>hi</p>" * 50, "js/app.1a2b3c4d.js": JS,
                       "img/x.bin": bytes(range(256))}.items():  # fmt: skip
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    archive = tmp_path / "node.tar"
    return archive, build_bundle(src, ["img/x.bin", "index.html", "js/app.1a2b3c4d.js"], archive)


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name]


def rewrite(archive: Path, out: Path, change: Any) -> str:
    """Write ``archive`` again at ``out`` after ``change(members)`` (a list of (name, data));
    returns the new archive's sha256."""
    with tarfile.open(archive) as tar:
        items = []
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            items.append((m.name, f.read()))
    change(items)
    with out.open("wb") as f:
        writer = TarWriter(f)
        for name, data in items:
            writer.add_bytes(name, data)
        writer.close()
    return hashlib.sha256(out.read_bytes()).hexdigest()


def test_unpack_writes_every_file_and_variant(
    tmp_path: Path, built: tuple[Path, BuiltBundle]
) -> None:
    archive, bundle = built
    dest = tmp_path / "sites" / bundle.hash
    dest.parent.mkdir()
    manifest = unpack(archive, dest, bundle.hash)
    assert manifest == bundle.manifest
    assert (dest / "js/app.1a2b3c4d.js").read_bytes() == JS
    assert gzip.decompress((dest / "js/app.1a2b3c4d.js.gz").read_bytes()) == JS
    assert (dest / "js/app.1a2b3c4d.js.br").exists()
    assert (dest / "img/x.bin").read_bytes() == bytes(range(256))
    for path in dest.rglob("*"):
        st = path.stat()
        assert st.st_mtime == unpack_module.bundle_mtime(bundle.hash)
        assert st.st_mode & 0o777 == (0o755 if path.is_dir() else 0o644)
    assert dest.stat().st_mode & 0o777 == 0o755  # mkdtemp's 0700 would lock nginx out
    assert leftovers(dest.parent) == []


def test_the_hash_is_checked_first(tmp_path: Path, built: tuple[Path, BuiltBundle]) -> None:
    archive, bundle = built
    with pytest.raises(BundleError) as info:
        unpack(archive, tmp_path / "dest", "0" * 64)
    assert str(info.value) == f"the bundle's sha256 is {bundle.hash}, expected {'0' * 64}"
    assert not (tmp_path / "dest").exists() and leftovers(tmp_path) == []
    assert unpack(archive, tmp_path / "dest", bundle.hash.upper()) == bundle.manifest


def test_one_corrupt_byte_is_refused(tmp_path: Path, built: tuple[Path, BuiltBundle]) -> None:
    archive, bundle = built
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="the bundle's sha256 is"):
        unpack(archive, tmp_path / "dest", bundle.hash)
    assert not (tmp_path / "dest").exists()


def test_a_file_that_does_not_match_its_manifest_is_refused(
    tmp_path: Path, built: tuple[Path, BuiltBundle]
) -> None:
    # An archive whose hash is right (the control plane's word) but whose content lies.
    archive, _ = built

    def swap(items: list[tuple[str, bytes]]) -> None:
        for i, (name, data) in enumerate(items):
            if name == "files/index.html":
                items[i] = (name, data.replace(b"hi", b"HI"))

    forged = tmp_path / "forged.tar"
    digest = rewrite(archive, forged, swap)
    with pytest.raises(BundleError) as info:
        unpack(forged, tmp_path / "dest", digest)
    assert info.value.path == "index.html" and "sha256" in info.value.reason
    assert not (tmp_path / "dest").exists() and leftovers(tmp_path) == []


def test_a_tampered_manifest_is_refused(tmp_path: Path, built: tuple[Path, BuiltBundle]) -> None:
    archive, _ = built

    def tamper(items: list[tuple[str, bytes]]) -> None:
        manifest = json.loads(items[0][1])
        manifest["files"]["img/x.bin"]["sha256"] = hashlib.sha256(b"other").hexdigest()
        items[0] = ("manifest.json", manifest_bytes(manifest))

    forged = tmp_path / "forged.tar"
    digest = rewrite(archive, forged, tamper)
    with pytest.raises(BundleError) as info:
        unpack(forged, tmp_path / "dest", digest)
    assert info.value.path == "img/x.bin"
    assert leftovers(tmp_path) == []

    def break_json(items: list[tuple[str, bytes]]) -> None:
        items[0] = ("manifest.json", b"{not json")

    digest = rewrite(archive, forged, break_json)
    with pytest.raises(BundleError, match="not JSON"):
        unpack(forged, tmp_path / "dest", digest)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda items: items.append(("files/extra.html", b"x")), "does not list"),
        (lambda items: items.append(("other/x", b"x")), "outside files/"),
        (lambda items: items.append(("files/../../x", b"x")), "leave the bundle"),
        (lambda items: items.append(("files/./index.html", b"x")), "not normalised"),
        (lambda items: items.pop(), "lacks a file"),
        (lambda items: items.append(items[-1]), "twice"),
        (lambda items: items.reverse(), "does not start with manifest.json"),
    ],
)
def test_members_the_manifest_does_not_account_for_are_refused(
    tmp_path: Path, built: tuple[Path, BuiltBundle], change: Any, words: str
) -> None:
    archive, _ = built
    forged = tmp_path / "forged.tar"
    digest = rewrite(archive, forged, change)
    with pytest.raises(BundleError, match=words):
        unpack(forged, tmp_path / "dest", digest)
    assert not (tmp_path / "dest").exists() and leftovers(tmp_path) == []
    assert not (tmp_path / "x").exists()


def test_a_link_member_is_refused(tmp_path: Path, built: tuple[Path, BuiltBundle]) -> None:
    archive, _ = built
    forged = tmp_path / "forged.tar"
    with tarfile.open(archive) as src, tarfile.open(forged, "w") as out:
        for m in src.getmembers():
            out.addfile(m, src.extractfile(m))
        link = tarfile.TarInfo("files/index.html.gz")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        out.addfile(link)
    digest = hashlib.sha256(forged.read_bytes()).hexdigest()
    with pytest.raises(BundleError, match="other than a regular file"):
        unpack(forged, tmp_path / "dest", digest)
    assert not (tmp_path / "dest").exists()


def test_an_existing_destination_is_the_same_bundle(
    tmp_path: Path, built: tuple[Path, BuiltBundle]
) -> None:
    archive, bundle = built
    dest = tmp_path / "dest"
    unpack(archive, dest, bundle.hash)
    marker = dest / "index.html"
    before = marker.stat().st_ino
    assert unpack(archive, dest, bundle.hash) == bundle.manifest
    assert marker.stat().st_ino == before and leftovers(tmp_path) == []


def test_losing_the_race_to_another_unpack_is_fine(
    tmp_path: Path, built: tuple[Path, BuiltBundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, bundle = built
    dest = tmp_path / "dest"
    real = unpack_module._extract

    def extract_then_lose(archive: Path, into: Path, mtime: int) -> dict[str, Any]:
        manifest = real(archive, into, mtime)
        dest.mkdir()  # another process renamed its copy in meanwhile
        (dest / "theirs").write_text("x")
        return manifest

    monkeypatch.setattr(unpack_module, "_extract", extract_then_lose)
    assert unpack(archive, dest, bundle.hash) == bundle.manifest
    assert os.listdir(dest) == ["theirs"] and leftovers(tmp_path) == []


def test_manifest_checks(tmp_path: Path) -> None:
    good = {"format": 1, "total_bytes": 1, "files": {"a": {"sha256": "a" * 64, "size": 1,
            "type": "text/plain", "immutable": False, "gzip": None, "br": None}}}  # fmt: skip
    assert set(unpack_module._expected(good)) == {"a"}
    bad_cases = [
        {**good, "format": 2},
        {**good, "total_bytes": 2},
        {**good, "files": {"/a": good["files"]["a"]}},  # type: ignore[index]
        {**good, "files": {"a": {**good["files"]["a"], "size": -1}}},  # type: ignore[index]
        {**good, "files": {"a": {**good["files"]["a"], "sha256": "xyz"}}},  # type: ignore[index]
        {**good, "files": {"a": good["files"]["a"], "a/b": good["files"]["a"]}},  # type: ignore[index]
    ]
    for case in bad_cases:
        with pytest.raises(BundleError):
            unpack_module._expected(case)
