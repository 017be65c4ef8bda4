"""unpack: a node verifies the whole archive, then the bundle appears at once, or not at all."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
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
    members = {
        name + suffix: (entry if suffix == "" else entry[key])
        for name, entry in bundle.manifest["files"].items()
        for suffix, key in (("", ""), (".gz", "gzip"), (".br", "br"))
        if suffix == "" or entry[key]
    }
    for path in dest.rglob("*"):
        st = path.stat()
        if path.is_dir():
            assert st.st_mtime == unpack_module.bundle_mtime(bundle.hash)
        else:  # by content: the same in every bundle that holds it, on every node
            sha = members[path.relative_to(dest).as_posix()]["sha256"]
            assert st.st_mtime == unpack_module.file_mtime(sha)
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

    def extract_then_lose(tar: Any, into: Path, mtime: int, *rest: Any) -> dict[str, Any]:
        manifest = real(tar, into, mtime, *rest)
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


def reuse_of(dest: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """What a node hands ``unpack`` as ``reuse``: every file of an unpacked bundle by sha256."""
    out = {}
    for name, entry in manifest["files"].items():
        out[entry["sha256"]] = str(dest / name)
        for suffix, key in ((".gz", "gzip"), (".br", "br")):
            if entry[key]:
                out[entry[key]["sha256"]] = str(dest / (name + suffix))
    return out


def test_unchanged_files_are_linked_to_the_earlier_bundle(
    tmp_path: Path, built: tuple[Path, BuiltBundle]
) -> None:
    archive, first = built
    old = tmp_path / "old"
    unpack(archive, old, first.hash)
    # The next bundle: index.html changed, the rest as it was.
    src = tmp_path / "src"
    (src / "index.html").write_bytes(b"<p>changed</p>" * 50)
    files = ["img/x.bin", "index.html", "js/app.1a2b3c4d.js"]
    second = build_bundle(src, files, tmp_path / "second.tar")
    new = tmp_path / "new"
    counts: dict[str, int] = {}
    with (tmp_path / "second.tar").open("rb") as f:
        manifest = unpack_module.unpack_stream(
            f, new, second.hash, reuse_of(old, first.manifest), counts
        )
    assert manifest == second.manifest
    assert counts["linked"] >= 3 and counts["written"] >= 1
    assert counts["linked"] + counts["written"] == sum(1 for p in new.rglob("*") if p.is_file())
    for name in ("img/x.bin", "js/app.1a2b3c4d.js", "js/app.1a2b3c4d.js.br"):
        assert (new / name).stat().st_ino == (old / name).stat().st_ino, name
        assert (new / name).read_bytes() == (old / name).read_bytes()
    assert (new / "index.html").stat().st_ino != (old / "index.html").stat().st_ino
    assert (new / "index.html").read_bytes() == b"<p>changed</p>" * 50
    assert (old / "index.html").read_bytes() == b"<p>hi</p>" * 50  # the old one untouched
    assert leftovers(tmp_path) == []


def test_a_reused_file_that_is_not_what_it_should_be_is_written_instead(
    tmp_path: Path, built: tuple[Path, BuiltBundle]
) -> None:
    archive, bundle = built
    old = tmp_path / "old"
    unpack(archive, old, bundle.hash)
    reuse = reuse_of(old, bundle.manifest)
    # Damaged on the node's disk (another size), a link, gone: none of them is linked to.
    (old / "index.html").chmod(0o644)
    (old / "index.html").write_bytes(b"truncated")
    (old / "img/x.bin").unlink()
    (old / "img/x.bin").symlink_to(old / "js/app.1a2b3c4d.js")
    (old / "js/app.1a2b3c4d.js.br").unlink()
    new = tmp_path / "new"
    assert unpack(archive, new, bundle.hash, reuse) == bundle.manifest
    assert (new / "index.html").read_bytes() == b"<p>hi</p>" * 50
    assert (new / "img/x.bin").read_bytes() == bytes(range(256))
    assert not (new / "img/x.bin").is_symlink()
    assert (new / "js/app.1a2b3c4d.js.br").stat().st_nlink == 1
    assert (new / "js/app.1a2b3c4d.js").stat().st_ino == (old / "js/app.1a2b3c4d.js").stat().st_ino


def test_a_forged_file_is_refused_even_when_its_content_is_on_the_node(
    tmp_path: Path, built: tuple[Path, BuiltBundle]
) -> None:
    # The archive's bytes are what is checked, never the file the node would link to.
    archive, bundle = built
    old = tmp_path / "old"
    unpack(archive, old, bundle.hash)

    def swap(items: list[tuple[str, bytes]]) -> None:
        for i, (name, data) in enumerate(items):
            if name == "files/img/x.bin":
                items[i] = (name, bytes(reversed(data)))

    forged = tmp_path / "forged.tar"
    digest = rewrite(archive, forged, swap)
    with pytest.raises(BundleError) as info:
        unpack(forged, tmp_path / "dest", digest, reuse_of(old, bundle.manifest))
    assert info.value.path == "img/x.bin" and "sha256" in info.value.reason
    assert not (tmp_path / "dest").exists() and leftovers(tmp_path) == []


def test_a_corrupt_stream_is_refused_by_the_archive_hash_and_leaves_nothing(
    tmp_path: Path, built: tuple[Path, BuiltBundle]
) -> None:
    # Unpacked as it arrives: a byte flipped inside a file shows first as that file's
    # mismatch; the archive's hash is what is reported, and nothing is left at dest.
    archive, bundle = built
    data = bytearray(archive.read_bytes())
    at = bytes(data).index(b"<p>hi</p>")
    data[at] ^= 0x01
    with pytest.raises(BundleError, match="the bundle's sha256 is"):
        unpack_module.unpack_stream(io.BytesIO(bytes(data)), tmp_path / "dest", bundle.hash)
    assert not (tmp_path / "dest").exists() and leftovers(tmp_path) == []
    # Cut short: the same.
    with pytest.raises(BundleError):
        unpack_module.unpack_stream(
            io.BytesIO(bytes(data[: len(data) // 2])), tmp_path / "dest", bundle.hash
        )
    assert not (tmp_path / "dest").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda data: data.__setitem__(148, ord("7")), "checksum"),  # the manifest's header
        (lambda data: data.__setitem__(slice(124, 136), b"zzzzzzzzzzz\0"), "damaged"),
        (lambda data: data.__delitem__(slice(700, None)), "truncated"),
    ],
)
def test_a_damaged_header_is_refused(
    tmp_path: Path, built: tuple[Path, BuiltBundle], damage: Any, words: str
) -> None:
    archive, _ = built
    data = bytearray(archive.read_bytes())
    damage(data)
    digest = hashlib.sha256(bytes(data)).hexdigest()  # the control plane's word, even so
    with pytest.raises(BundleError, match=words):
        unpack_module.unpack_stream(io.BytesIO(bytes(data)), tmp_path / "dest", digest)
    assert not (tmp_path / "dest").exists() and leftovers(tmp_path) == []


def test_long_and_non_ascii_names_come_through_pax_headers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    names = ["d" * 90 + "/" + "e" * 90 + "/page.html", "café/ünïcode.txt", "x.txt"]
    for name in names:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(f"<p>{name}</p>" * 40)
    archive = tmp_path / "node.tar"
    bundle = build_bundle(src, sorted(names), archive)
    dest = tmp_path / "dest"
    assert unpack(archive, dest, bundle.hash) == bundle.manifest
    for name in names:
        assert (dest / name).read_text() == f"<p>{name}</p>" * 40
        assert (dest / (name + ".gz")).exists()
