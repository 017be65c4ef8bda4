"""extract_upload: real tar, tar.gz and zip archives with crafted members, good and hostile."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from edgeplane.bundles import BundleError, BundleLimits, archive_format, extract_upload
from edgeplane.bundles import read as read_module
from edgeplane.bundles.read import NOT_A_TAR_GZ, NOT_AN_ARCHIVE

Member = tuple[tarfile.TarInfo, bytes | None]


def reg(name: str, data: bytes = b"x") -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def sym(name: str, target: str) -> Member:
    return special(name, tarfile.SYMTYPE, target)


def hard(name: str, target: str) -> Member:
    return special(name, tarfile.LNKTYPE, target)


def folder(name: str) -> Member:
    return special(name, tarfile.DIRTYPE)


def make_tar(path: Path, *members: Member, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def make_zip(path: Path, *members: tuple[zipfile.ZipInfo | str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return path


def zip_link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


def extract(archive: Path, dest: Path, **limits: int) -> list[str]:
    return extract_upload(archive, dest, BundleLimits(**limits))


def refused(archive: Path, dest: Path, **limits: int) -> BundleError:
    with pytest.raises(BundleError) as info:
        extract(archive, dest, **limits)
    return info.value


# -- formats and good archives ---------------------------------------------------------------


def test_tar_is_extracted_with_dirs_implied_and_dot_prefixes_dropped(
    tmp_path: Path, dest: Path
) -> None:
    archive = make_tar(
        tmp_path / "up.tar",
        folder("."),
        folder("./assets"),
        reg("./index.html", b"<h1>hi</h1>"),
        reg("./assets/app.js", b"let a = 1;"),
        reg("deep/er/x.txt", b"deep"),
    )
    assert archive_format(archive) == "tar"
    assert extract(archive, dest) == ["assets/app.js", "deep/er/x.txt", "index.html"]
    assert (dest / "index.html").read_bytes() == b"<h1>hi</h1>"
    assert (dest / "assets/app.js").read_bytes() == b"let a = 1;"
    assert (dest / "deep/er/x.txt").read_bytes() == b"deep"


def test_tar_gz_and_zip_give_the_same_files(tmp_path: Path, dest: Path) -> None:
    tgz = make_tar(tmp_path / "up.tgz", reg("a.css", b"body{}"), reg("b/c.js", b"1"), mode="w:gz")
    zp = make_zip(tmp_path / "up.zip", ("a.css", b"body{}"), ("b/", b""), ("b/c.js", b"1"))
    assert archive_format(tgz) == "tar.gz"
    assert archive_format(zp) == "zip"
    other = tmp_path / "other"
    other.mkdir()
    assert extract(tgz, dest) == extract(zp, other) == ["a.css", "b/c.js"]
    assert (dest / "b/c.js").read_bytes() == (other / "b/c.js").read_bytes() == b"1"


def test_a_file_that_is_no_archive_is_refused(tmp_path: Path, dest: Path) -> None:
    text = tmp_path / "site.txt"
    text.write_text("hello " * 200)
    assert archive_format(text) is None
    assert str(refused(text, dest)) == NOT_AN_ARCHIVE
    bz = tmp_path / "x.tar.bz2"
    make_tar(bz, reg("a"), mode="w:bz2")
    assert str(refused(bz, dest)) == NOT_AN_ARCHIVE


def test_a_gzip_file_without_a_tar_inside_is_refused(tmp_path: Path, dest: Path) -> None:
    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress(b"just text, " * 100))
    assert str(refused(gz, dest)) == NOT_A_TAR_GZ


def test_an_archive_without_files_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tar", folder("a"), folder("a/b"))
    assert "no files" in str(refused(archive, dest))


# -- paths -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil", "a path may not leave the bundle"),
        ("assets/../../x", "a path may not leave the bundle"),
        ("assets/../index.html", "'..'"),
        ("/abs", "absolute"),
        ("a\\b.html", "backslash"),
        ("bad\x01name.html", "control characters"),
        (".edgeplane/config", "reserved for Edgeplane"),
    ],
)
def test_a_bad_member_name_is_refused_and_named(
    tmp_path: Path, dest: Path, name: str, reason: str
) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("ok.html"), reg(name, b"evil"))
    error = refused(archive, dest)
    assert reason in error.reason
    assert error.path is not None and error.path.encode("unicode_escape") != b""
    assert not (tmp_path / "evil").exists()
    assert not Path("/abs").exists()


def test_a_bad_name_in_a_zip_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_zip(tmp_path / "up.zip", ("ok.html", b"x"), ("../../evil", b"evil"))
    error = refused(archive, dest)
    assert error.path == "../../evil"
    assert not (tmp_path / "evil").exists()


def test_a_path_longer_than_the_limit_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("d/" * 40 + "f.html"))
    assert "longer than 50 bytes" in str(refused(archive, dest, max_path_bytes=50))


def test_duplicate_paths_are_refused_even_spelled_differently(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("a/x.js", b"1"), reg("./a//x.js", b"2"))
    error = refused(archive, dest)
    assert error.path == "a/x.js" and "more than once" in error.reason


def test_a_path_that_is_file_and_folder_is_refused(tmp_path: Path, dest: Path) -> None:
    one = make_tar(tmp_path / "1.tar", reg("a", b"1"), reg("a/b", b"2"))
    assert "which is a file" in str(refused(one, dest))
    two = make_tar(tmp_path / "2.tar", reg("a/b", b"2"), reg("a", b"1"))
    other = tmp_path / "o"
    other.mkdir()
    assert "both a file and a folder" in str(refused(two, other))


# -- links and special files -----------------------------------------------------------------


def test_links_inside_the_bundle_become_copies(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(
        tmp_path / "up.tar",
        reg("index.html", b"<p>home</p>"),
        sym("home.html", "index.html"),
        sym("css/site.css", "../style.css"),  # to a member that comes later
        reg("style.css", b"body{color:red}"),
        hard("copy.html", "index.html"),
        sym("chain.html", "home.html"),  # a link to a link
    )
    files = extract(archive, dest)
    assert files == ["chain.html", "copy.html", "css/site.css", "home.html", "index.html",
                     "style.css"]  # fmt: skip
    for name in ("home.html", "copy.html", "chain.html"):
        assert (dest / name).read_bytes() == b"<p>home</p>"
        assert not (dest / name).is_symlink()
    assert (dest / "css/site.css").read_bytes() == b"body{color:red}"
    assert not (dest / "css/site.css").is_symlink()


@pytest.mark.parametrize("target", ["../../etc/passwd", "/etc/passwd", "b/../../../x"])
def test_a_link_out_of_the_bundle_is_refused(tmp_path: Path, dest: Path, target: str) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("a/index.html"), sym("a/evil", target))
    error = refused(archive, dest)
    assert error.path == "a/evil"
    assert "a link may not point out of the bundle" in error.reason
    assert not (dest / "a/evil").exists()


def test_a_hardlink_out_of_the_bundle_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("index.html"), hard("evil", "../secret"))
    assert "a link may not point out of the bundle" in str(refused(archive, dest))


def test_a_link_to_a_directory_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("assets/a.js"), sym("static", "assets"))
    error = refused(archive, dest)
    assert error.path == "static" and error.reason == "a link to a directory is not supported"
    via = make_tar(tmp_path / "via.tar", reg("assets/a.js"), sym("s", "assets"), sym("b", "s/a.js"))
    other = tmp_path / "o"
    other.mkdir()
    assert "a link to a directory is not supported" in str(refused(via, other))


def test_a_dangling_link_and_a_link_loop_are_refused(tmp_path: Path, dest: Path) -> None:
    dangling = make_tar(tmp_path / "d.tar", reg("index.html"), sym("gone.html", "nothere.html"))
    assert "nothere.html, which is not in the bundle" in str(refused(dangling, dest))
    loop = make_tar(tmp_path / "l.tar", reg("index.html"), sym("a", "b"), sym("b", "a"))
    other = tmp_path / "o"
    other.mkdir()
    assert "loop" in str(refused(loop, other))


@pytest.mark.parametrize(
    ("kind", "word"),
    [(tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "FIFO")],
)
def test_devices_and_fifos_are_refused(tmp_path: Path, dest: Path, kind: bytes, word: str) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("index.html"), special("dev/thing", kind))
    error = refused(archive, dest)
    assert error.path == "dev/thing" and word in error.reason


def test_links_and_specials_in_a_zip(tmp_path: Path, dest: Path) -> None:
    good = make_zip(
        tmp_path / "g.zip", ("index.html", b"hi"), (zip_link("alias.html"), b"index.html")
    )
    assert extract(good, dest) == ["alias.html", "index.html"]
    assert (dest / "alias.html").read_bytes() == b"hi"
    bad = make_zip(tmp_path / "b.zip", ("index.html", b"hi"), (zip_link("pw"), b"/etc/passwd"))
    other = tmp_path / "o"
    other.mkdir()
    assert "a link may not point out of the bundle" in str(refused(bad, other))
    fifo = zipfile.ZipInfo("pipe")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    third = tmp_path / "t"
    third.mkdir()
    assert "FIFO" in str(refused(make_zip(tmp_path / "f.zip", (fifo, b"")), third))


# -- limits ----------------------------------------------------------------------------------


def test_a_file_declared_too_large_is_refused_before_it_is_written(
    tmp_path: Path, dest: Path
) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("small.txt", b"1"), reg("big.bin", b"x" * 2000))
    error = refused(archive, dest, max_file_bytes=1000)
    assert error.path == "big.bin" and "limit" in error.reason
    assert not (dest / "big.bin").exists()


def test_the_total_and_the_file_count_are_limited(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tar", *(reg(f"f{i}.txt", b"x" * 400) for i in range(4)))
    error = refused(archive, dest, max_total_bytes=1000)
    assert error.path == "f2.txt" and "bundle is larger than the limit" in error.reason
    other = tmp_path / "o"
    other.mkdir()
    assert "more than 3 files" in str(refused(archive, other, max_files=3))
    third = tmp_path / "t"
    third.mkdir()
    assert len(extract(archive, third, max_files=4, max_total_bytes=1600)) == 4


def test_links_count_towards_the_limits(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("a.bin", b"x" * 600), sym("b.bin", "a.bin"))
    assert "bundle is larger" in str(refused(archive, dest, max_total_bytes=1000))


def test_a_zip_bomb_is_stopped(tmp_path: Path, dest: Path) -> None:
    archive = make_zip(
        tmp_path / "bomb.zip", ("index.html", b"hi"), ("bomb.txt", b"\0" * 5_000_000)
    )
    assert archive.stat().st_size < 50_000  # a small upload ...
    error = refused(archive, dest, max_file_bytes=1_000_000)  # ... that would expand 100-fold
    assert error.path == "bomb.txt" and "limit of 0.95 MiB" in error.reason
    assert not (dest / "bomb.txt").exists()


def test_the_bytes_really_read_are_counted_not_the_declared_size(dest: Path) -> None:
    # A member that declares 10 bytes and delivers 5,000 (what a forged zip header would do).
    bundle = read_module._Bundle(dest, BundleLimits(max_file_bytes=1000))
    with pytest.raises(BundleError) as info:
        bundle.regular("liar.bin", 10, io.BytesIO(b"x" * 5000))
    assert info.value.path == "liar.bin" and "limit" in info.value.reason
    assert os.path.getsize(dest / "liar.bin") <= 1000 + read_module.CHUNK


def test_too_many_directory_entries_are_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("a"), *(folder(f"d{i}") for i in range(1010)))
    assert "more than 1002 entries" in str(refused(archive, dest, max_files=1))


# -- damaged archives ------------------------------------------------------------------------


def test_a_truncated_tar_is_refused_even_at_a_header_boundary(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("a.txt", b"a" * 100), reg("b.txt", b"b" * 100))
    whole = archive.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[:1024])  # a's header and data; b's header and the end marker lost
    with tarfile.open(cut) as tar:  # tarfile itself would see a complete archive of one file
        assert tar.getnames() == ["a.txt"]
    assert "truncated" in str(refused(cut, dest))
    mid = tmp_path / "mid.tar"
    mid.write_bytes(whole[:1600])  # inside b's data
    other = tmp_path / "o"
    other.mkdir()
    assert "damaged or truncated" in str(refused(mid, other))


def test_a_damaged_header_is_refused_not_taken_for_the_end(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tar", reg("a.txt", b"a" * 100), reg("b.txt", b"b" * 100))
    data = bytearray(archive.read_bytes())
    data[1024 + 10] ^= 0xFF  # b's header: its checksum no longer matches
    archive.write_bytes(bytes(data))
    assert "damaged header" in str(refused(archive, dest))


def test_a_truncated_tar_gz_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = make_tar(tmp_path / "up.tgz", reg("a.bin", os.urandom(50_000)), mode="w:gz")
    archive.write_bytes(archive.read_bytes()[:20_000])
    assert "damaged or truncated" in str(refused(archive, dest))


def test_an_oversized_extended_header_is_refused(tmp_path: Path, dest: Path) -> None:
    info, data = reg("a.txt")
    info.pax_headers = {"comment": "x" * (2 * 1024 * 1024)}
    archive = make_tar(tmp_path / "up.tar", (info, data))
    assert "oversized extended header" in str(refused(archive, dest))
