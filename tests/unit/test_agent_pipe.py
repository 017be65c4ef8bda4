"""FilePipe: a download read while it arrives, by a thread, through a real file."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest

from edgeplane.node.agent.pipe import DownloadFailed, FilePipe


def test_the_reader_gets_every_byte_in_order_as_it_is_written(tmp_path: Path) -> None:
    pipe = FilePipe(tmp_path / "x.part")
    chunks = [os.urandom(n) for n in (1, 511, 70_000, 1 << 20, 3)]
    got: list[bytes] = []

    def read() -> None:
        reader = io.BufferedReader(pipe, 4096)
        while data := reader.read(1000):
            got.append(data)
        reader.detach()

    thread = threading.Thread(target=read)
    thread.start()
    for chunk in chunks:
        time.sleep(0.01)  # the reader waits for bytes not written yet
        pipe.write_chunk(chunk)
    pipe.finish()
    thread.join(5)
    assert not thread.is_alive()
    assert b"".join(got) == b"".join(chunks)
    pipe.close()


def test_a_failed_download_ends_the_reader_with_an_error(tmp_path: Path) -> None:
    pipe = FilePipe(tmp_path / "x.part")
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while pipe.read(100):
                pass
        except DownloadFailed as exc:
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    pipe.write_chunk(b"partial")
    pipe.finish(ConnectionError("reset by peer"))
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1 and "reset by peer" in str(errors[0])
    pipe.close()
    with pytest.raises(ValueError):
        pipe.read(1)  # closed
