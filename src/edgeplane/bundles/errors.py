"""The one exception of the bundle package.

A ``BundleError`` is always the user's to fix: the API turns it into a 422 problem document, the
CLI prints it. ``path`` is the file inside the bundle at fault (``None`` when the whole upload is),
``reason`` says what is wrong with it in words a user understands::

    assets/../../x: a path may not leave the bundle
    the upload is not a tar, tar.gz or zip archive
"""

from __future__ import annotations

import unicodedata


def display_path(name: str) -> str:
    """``name`` safe to print: control characters and undecodable bytes shown as escapes."""
    out = []
    for char in name:
        if 0xD800 <= ord(char) <= 0xDFFF:  # an undecodable byte, kept by surrogateescape
            out.append(f"\\x{ord(char) & 0xFF:02x}")
        elif unicodedata.category(char) == "Cc":
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


class BundleError(Exception):
    """A bundle (or one of its files) that Edgeplane refuses, and why."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.reason = reason
        self.path = None if path is None else display_path(path)
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.reason if self.path is None else f"{self.path}: {self.reason}"

    def __reduce__(self) -> tuple[type[BundleError], tuple[str, str | None]]:
        # Survives pickling (a process pool hands it back to the parent).
        return (type(self), (self.reason, self.path))
