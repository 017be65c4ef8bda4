"""Static bundles: errors, limits, the path rule, and a site's whole way to an edge node."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import pytest

from edgeplane.bundles import (
    BundleError,
    BundleLimits,
    build_bundle,
    clean_path,
    extract_upload,
    from_env,
    is_archive,
    pack_directory,
    unpack,
)

MiB = 1024 * 1024


def test_bundle_error_names_the_path() -> None:
    error = BundleError("a path may not leave the bundle", "assets/../../x")
    assert str(error) == "assets/../../x: a path may not leave the bundle"
    assert (error.path, error.reason) == ("assets/../../x", "a path may not leave the bundle")
    whole = BundleError("the upload is not a tar, tar.gz or zip archive")
    assert str(whole) == "the upload is not a tar, tar.gz or zip archive" and whole.path is None
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, str(copy)) == (error.path, error.reason, str(error))


def test_bundle_error_shows_control_characters_escaped() -> None:
    error = BundleError("bad", "a\x1b[31mred\x00.html")
    assert str(error) == "a\\x1b[31mred\\x00.html: bad"
    assert "\x1b" not in str(error)


def test_limits_defaults_and_environment() -> None:
    assert BundleLimits() == BundleLimits(512 * MiB, 25 * MiB, 20_000, 1024)
    assert from_env({}) == BundleLimits()
    environ = {
        "EDGEPLANE_BUNDLE_MAX_BYTES": "1000",
        "EDGEPLANE_BUNDLE_MAX_FILE_BYTES": " 10 ",
        "EDGEPLANE_BUNDLE_MAX_FILES": "3",
        "EDGEPLANE_BUNDLE_OTHER": "x",
    }
    limits = from_env(environ)
    assert limits == BundleLimits(1000, 10, 3, 1024)


@pytest.mark.parametrize("value", ["lots", "1.5", "0", "-3"])
def test_a_bad_limit_names_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match="EDGEPLANE_BUNDLE_MAX_FILES"):
        from_env({"EDGEPLANE_BUNDLE_MAX_FILES": value})


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("index.html", "index.html"),
        ("./index.html", "index.html"),
        ("a/./b//c.js", "a/b/c.js"),
        ("assets/", "assets/"),
        ("./assets/./", "assets/"),
        ("./", "./"),
        ("dé jà/ü.txt", "dé jà/ü.txt"),
        (".well-known/x", ".well-known/x"),
        ("x/.edgeplane/y", "x/.edgeplane/y"),  # only the top level is reserved
        ("...", "..."),
    ],
)
def test_clean_path_normalises(name: str, clean: str) -> None:
    assert clean_path(name) == clean


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("../x", "a path may not leave the bundle"),
        ("assets/../../x", "a path may not leave the bundle"),
        ("a/../b", "'..'"),
        ("a/..", "'..'"),
        ("a\\b", "backslash"),
        ("a\0b", "control characters"),
        ("a\nb", "control characters"),
        ("a\x7fb", "control characters"),
        ("a\x85b", "control characters"),
        ("bad\udcff.html", "UTF-8"),
        ("", "empty"),
        (".", "empty"),
        (".edgeplane/x", "reserved for Edgeplane"),
        (".edgeplane/", "reserved for Edgeplane"),
        ("x" * 256, "255 bytes"),
        ("a/" * 600 + "b", "longer than 1024 bytes"),
        ("/".join(["é" * 100] * 6), "longer than 1024 bytes"),  # 1,205 bytes in 605 letters
    ],
)
def test_clean_path_refuses(name: str, reason: str) -> None:
    with pytest.raises(BundleError) as info:
        clean_path(name)
    assert reason in info.value.reason
    assert info.value.path is not None or name == ""


def test_clean_path_error_example() -> None:
    with pytest.raises(BundleError) as info:
        clean_path("assets/../../x")
    assert str(info.value) == "assets/../../x: a path may not leave the bundle"


def test_a_site_from_the_users_folder_to_an_edge_node(tmp_path: Path) -> None:
    site = tmp_path / "site"
    rng = random.Random(5)
    files = {
        "index.html": b"<!doctype html><title>x</title>" + b"<p>hello</p>" * 100,
        "assets/app.3f2a9c1b.js": b"console.log('hi');\n" * 300,
        "assets/logo.png": rng.randbytes(5000),
    }
    for name, data in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)
    (site / "home.html").symlink_to("index.html")
    limits = BundleLimits()

    upload = tmp_path / "upload.tar"
    assert pack_directory(site, upload, limits).files == 4
    assert is_archive(upload)
    work = tmp_path / "work"
    work.mkdir()
    paths = extract_upload(upload, work, limits)
    assert paths == ["assets/app.3f2a9c1b.js", "assets/logo.png", "home.html", "index.html"]
    node_archive = tmp_path / "node.tar"
    built = build_bundle(work, paths, node_archive)
    assert built.files == 4 and built.compressed_files == 3  # all but the png

    dest = tmp_path / "edge" / built.hash
    dest.parent.mkdir()
    manifest = unpack(node_archive, dest, built.hash)
    assert manifest["files"]["assets/app.3f2a9c1b.js"]["immutable"] is True
    for name, data in {**files, "home.html": files["index.html"]}.items():
        assert (dest / name).read_bytes() == data
    assert sorted(p.name for p in (dest / "assets").iterdir()) == [
        "app.3f2a9c1b.js", "app.3f2a9c1b.js.br", "app.3f2a9c1b.js.gz", "logo.png"]  # fmt: skip
