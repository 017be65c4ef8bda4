"""What the agent keeps on disk: its last good snapshot and its node id.

``<state dir>/manifest.json`` holds the manifest of the last snapshot nginx accepted; the zones
and certificates it names are in ``<state dir>/objects/`` (``edgeplane.node.agent.objects``).
It is written atomically (temporary file in the same directory, fsync, rename) with mode 0600.
At start the agent serves from it before the control plane answers, and keeps serving from it
for as long as the control plane stays unreachable. ``snapshot.json`` (the full snapshot, with
private keys) is what agents before manifests saved: read when there is no manifest, removed
once a manifest is saved.

``<state dir>/node.json`` holds the id the control plane gave the node (informative: the
control plane recognises a node by its name).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from edgeplane.protocol import lenient
from edgeplane.protocol.config import EdgeConfig, EdgeManifest

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.json"  # the full snapshot, as agents before manifests saved it
MANIFEST_FILE = "manifest.json"
NODE_FILE = "node.json"


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateDir:
    """The agent's state directory (``$EDGEPLANE_HOME/edge/<node name>/``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def snapshot_path(self) -> Path:
        return self.directory / SNAPSHOT_FILE

    @property
    def node_path(self) -> Path:
        return self.directory / NODE_FILE

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Searchable (nginx workers may need to reach the prefix below), not listable.
        os.chmod(self.directory, 0o711)

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_FILE

    @property
    def objects_path(self) -> Path:
        return self.directory / "objects"

    def load_manifest(self) -> EdgeManifest | None:
        """The last good manifest, or None when there is none or it cannot be read."""
        try:
            raw = self.manifest_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            # leniently: an agent rolled back reads what a newer one saved
            return lenient.parse_json(EdgeManifest, raw)[0]
        except ValidationError as exc:
            log.warning(
                "ignoring unreadable saved manifest %s (%d errors)",
                self.manifest_path,
                exc.error_count(),
            )
            return None

    def save_manifest(self, manifest: EdgeManifest) -> None:
        write_private(self.manifest_path, manifest.model_dump_json().encode())
        self.snapshot_path.unlink(missing_ok=True)  # superseded (it held private keys)

    def load_snapshot(self) -> EdgeConfig | None:
        """The last good snapshot, or None when there is none or it cannot be read."""
        try:
            raw = self.snapshot_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return EdgeConfig.model_validate_json(raw)
        except ValidationError as exc:
            log.warning(
                "ignoring unreadable saved snapshot %s (%d errors)",
                self.snapshot_path,
                exc.error_count(),
            )
            return None

    def save_snapshot(self, config: EdgeConfig) -> None:
        write_private(self.snapshot_path, config.model_dump_json().encode())

    def load_node_id(self) -> str | None:
        try:
            doc = json.loads(self.node_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        node_id = doc.get("id") if isinstance(doc, dict) else None
        return node_id if isinstance(node_id, str) else None

    def save_node_id(self, node_id: str, name: str) -> None:
        if self.load_node_id() == node_id:
            return
        body = json.dumps({"id": node_id, "name": name}, sort_keys=True).encode()
        write_private(self.node_path, body)
