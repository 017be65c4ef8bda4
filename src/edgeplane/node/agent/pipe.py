"""A download read while it arrives: a file one side writes and the other side reads behind it.

The node unpacks a bundle as it downloads it (``edgeplane.node.agent.bundles``): the event
loop writes each chunk from the control plane with ``write``, a worker thread reads the
archive through ``FilePipe`` as a raw stream (wrap it in ``io.BufferedReader``), each read
waiting for bytes not written yet. The bytes go through a file rather than memory, so a
slow reader never holds the whole archive in RAM. ``finish`` ends the stream: the reader
then sees its end, or, when the download failed, ``DownloadFailed``.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path


class DownloadFailed(OSError):
    """The writer gave up: the stream will not be complete."""


class FilePipe(io.RawIOBase):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self._cond = threading.Condition()
        self._written = 0
        self._read = 0
        self._done = False
        self._error: str | None = None

    # The writing side (the event loop) -------------------------------------------------------

    def write_chunk(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, self._written)
            view = view[n:]
            with self._cond:
                self._written += n
                self._cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        """No more bytes: the end of the stream, or (``error``) a failed download."""
        with self._cond:
            if not self._done:
                self._done = True
                self._error = None if error is None else f"{type(error).__name__}: {error}"
            self._cond.notify_all()

    # The reading side (a worker thread) ------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on a closed pipe")
        with self._cond:
            while self._read >= self._written and not self._done:
                self._cond.wait()
            if self._error is not None:
                raise DownloadFailed(f"the download failed: {self._error}")
            available = self._written - self._read
        if available <= 0:
            return 0  # the end
        view = memoryview(buffer)[: min(len(buffer), available)]
        n = os.preadv(self._fd, [view], self._read)
        self._read += n
        return n

    def close(self) -> None:
        if not self.closed:
            self.finish(DownloadFailed("closed"))
            os.close(self._fd)
        super().close()
