"""pack_directory and is_archive: the CLI's side of an upload."""

from __future__ import annotations

import gzip
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from edgeplane.bundles import BundleError, BundleLimits, is_archive, pack_directory


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def contents(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        out = {}
        for m in tar.getmembers():
            assert m.isreg(), m.name
            f = tar.extractfile(m)
            assert f is not None
            out[m.name] = f.read()
        return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    d = tmp_path / "site"
    d.mkdir()
    return d


def test_packs_regular_files_sorted_and_skips_git_and_ds_store(root: Path, tmp_path: Path) -> None:
    tree(root, {"index.html": b"<p>", "b/z.js": b"z", "a/y.css": b"y", ".git/HEAD": b"ref",
                ".DS_Store": b"junk", "a/.DS_Store": b"junk", "sub/.git/config": b"x",
                ".well-known/security.txt": b"sec"})  # fmt: skip
    (root / "empty").mkdir()
    out = tmp_path / "up.tar"
    result = pack_directory(root, out, BundleLimits())
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert names == [".well-known/security.txt", "a/y.css", "b/z.js", "index.html"]
    assert contents(out)["b/z.js"] == b"z"
    assert result.files == 4 and result.bytes == len(b"<p>zysec")
    assert is_archive(out)


def test_the_tar_is_deterministic(root: Path, tmp_path: Path) -> None:
    tree(root, {"index.html": b"<p>", "a/b.js": b"1"})
    pack_directory(root, tmp_path / "one.tar", BundleLimits())
    os.utime(root / "index.html", (1, 1))
    pack_directory(root, tmp_path / "two.tar", BundleLimits())
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()


def test_links_inside_are_followed(root: Path, tmp_path: Path) -> None:
    tree(root, {"index.html": b"home", "assets/app.js": b"js"})
    (root / "home.html").symlink_to("index.html")
    (root / "static").symlink_to("assets", target_is_directory=True)
    out = tmp_path / "up.tar"
    pack_directory(root, out, BundleLimits())
    files = contents(out)
    assert files == {"assets/app.js": b"js", "home.html": b"home", "index.html": b"home",
                     "static/app.js": b"js"}  # fmt: skip


def test_a_site_that_is_itself_a_link_is_packed(root: Path, tmp_path: Path) -> None:
    tree(root, {"index.html": b"home"})
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    assert pack_directory(alias, tmp_path / "up.tar", BundleLimits()).files == 1


def test_a_link_out_of_the_site_is_refused(root: Path, tmp_path: Path) -> None:
    tree(root, {"index.html": b"home"})
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    (root / "leak.txt").symlink_to(secret)
    with pytest.raises(BundleError) as info:
        pack_directory(root, tmp_path / "up.tar", BundleLimits())
    assert str(info.value) == f"leak.txt: a link may not point out of the bundle: -> {secret}"
    (root / "leak.txt").unlink()
    (root / "etc").symlink_to("../..")
    with pytest.raises(
        BundleError, match=r"^etc: a link may not point out of the bundle: -> \.\./\.\.$"
    ):
        pack_directory(root, tmp_path / "up.tar", BundleLimits())


def test_link_loops_and_dangling_links_are_refused(root: Path, tmp_path: Path) -> None:
    tree(root, {"a/index.html": b"x"})
    (root / "a/again").symlink_to("..", target_is_directory=True)
    with pytest.raises(BundleError, match="a/again: a link makes a loop"):
        pack_directory(root, tmp_path / "up.tar", BundleLimits())
    (root / "a/again").unlink()
    (root / "gone.html").symlink_to("nowhere.html")
    with pytest.raises(BundleError, match=r"gone\.html: a link points to nothing"):
        pack_directory(root, tmp_path / "up.tar", BundleLimits())


def test_a_fifo_is_refused(root: Path, tmp_path: Path) -> None:
    tree(root, {"index.html": b"x"})
    os.mkfifo(root / "pipe")
    with pytest.raises(BundleError, match=r"^pipe: a socket, FIFO or device"):
        pack_directory(root, tmp_path / "up.tar", BundleLimits())


def test_limits_name_the_file_and_the_limit_in_mib(root: Path, tmp_path: Path) -> None:
    tree(root, {"small.txt": b"x", "video.mp4": b"\0" * (3 * 1024 * 1024 // 2)})
    with pytest.raises(BundleError) as info:
        pack_directory(root, tmp_path / "up.tar", BundleLimits(max_file_bytes=1024 * 1024))
    assert (
        str(info.value) == "video.mp4: the file is 1.5 MiB, more than the limit of 1 MiB per file"
    )
    with pytest.raises(BundleError, match="more than 1 files"):
        pack_directory(root, tmp_path / "up.tar", BundleLimits(max_files=1))
    with pytest.raises(BundleError, match=r"^video\.mp4: the bundle grows past the limit of 1 MiB"):
        pack_directory(root, tmp_path / "up.tar", BundleLimits(max_total_bytes=1024 * 1024))


def test_bad_names_are_refused_before_the_upload(root: Path, tmp_path: Path) -> None:
    tree(root, {"a\\b.html": b"x"})
    with pytest.raises(BundleError, match="backslash"):
        pack_directory(root, tmp_path / "up.tar", BundleLimits())


def test_the_output_inside_the_site_and_an_empty_site(root: Path) -> None:
    with pytest.raises(BundleError, match="holds no files"):
        pack_directory(root, root / "up.tar", BundleLimits())
    tree(root, {"index.html": b"x"})
    out = root / "up.tar"
    out.write_bytes(b"old")
    assert pack_directory(root, out, BundleLimits()).files == 1
    assert list(contents(out)) == ["index.html"]


def test_is_archive(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        tar.addfile(tarfile.TarInfo("x"))
    (tmp_path / "a.tgz").write_bytes(gzip.compress((tmp_path / "a.tar").read_bytes()))
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("x", b"")
    (tmp_path / "a.txt").write_text("not an archive, though long enough " * 20)
    (tmp_path / "short").write_bytes(b"PK")
    assert is_archive(tmp_path / "a.tar") and is_archive(tmp_path / "a.tgz")
    assert is_archive(tmp_path / "a.zip")
    assert not is_archive(tmp_path / "a.txt") and not is_archive(tmp_path / "short")
    assert not is_archive(tmp_path) and not is_archive(tmp_path / "missing")
