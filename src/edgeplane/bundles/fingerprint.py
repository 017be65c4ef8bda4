"""Which file names are fingerprinted (their content's hash is in the name), so that the edge
may tell browsers to cache them for a year as immutable.

A name is fingerprinted when its last path segment has a run of at least 8 letters and digits,
with at least one of each, between a ``.``, ``-`` or ``_`` and the extension:
``app.3f2a9c1b.js``, ``main-BxK9fQ2a.css``, ``chunk_7d9e1a2b3c.mjs``; not ``index.html``,
``photo-20240101.jpg`` (a date: no letter) or ``jquery-3.7.1.min.js``. The same pattern is used
by the bundle builder (the manifest's ``immutable``) and, as a regular expression on ``$uri``,
by nginx (``edgeplane.edge.nginx.render_bundles``), so both always agree.
"""

from __future__ import annotations

import re

FINGERPRINT_PATTERN = r"[.\-_](?=[0-9A-Za-z]*[0-9])(?=[0-9A-Za-z]*[A-Za-z])[0-9A-Za-z]{8,}\.[^/]+$"
_FINGERPRINT = re.compile(FINGERPRINT_PATTERN)


def is_fingerprinted(path: str) -> bool:
    """Whether the last segment of ``path`` carries a content hash (see the module)."""
    return _FINGERPRINT.search("/" + path.lstrip("/")) is not None
