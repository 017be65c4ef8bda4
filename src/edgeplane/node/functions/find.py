"""Whether and how this machine runs edge functions: a Node.js binary (``EDGEPLANE_NODE``, else
``node`` on PATH) of major version 18 or later, and the runtime directory with its npm
packages installed (``scripts/bootstrap`` runs ``npm ci`` there) whose isolated-vm addon
loads in that Node.js (an addon built for another Node.js major version does not).

A node without them advertises no functions capability.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
MIN_NODE_MAJOR = 18
# isolated-vm needs V8 without Node's startup snapshot on Node 20 and later
NODE_FLAGS = ("--no-node-snapshot",)
ADDON = Path("node_modules/isolated-vm/out/isolated_vm.node")
PACKAGES = ("isolated-vm", "maxmind")
PROBE_TIMEOUT_S = 15.0


class RuntimeMissing(Exception):
    """This machine cannot run edge functions; the message says why."""


@dataclass(frozen=True)
class Runtime:
    """Node.js (``node``, its ``version``) and the runtime's ``directory``."""

    node: str
    version: str
    directory: Path

    def command(self, script: str) -> list[str]:
        """The command line that runs ``script`` of the runtime directory."""
        return [self.node, *NODE_FLAGS, str(self.directory / script)]


def _node_binary() -> str:
    wanted = os.environ.get("EDGEPLANE_NODE") or "node"
    found = shutil.which(wanted)
    if found is None:
        where = "EDGEPLANE_NODE" if os.environ.get("EDGEPLANE_NODE") else "PATH"
        raise RuntimeMissing(f"no Node.js binary: {wanted!r} not found (from {where})")
    return found


_PROBE = """
const dir = %s;
const out = { version: process.versions.node };
try {
  for (const name of %s) require(require("path").join(dir, "node_modules", name));
} catch (error) {
  out.error = String(error.message).split("\\n")[0];
}
console.log(JSON.stringify(out));
"""


@functools.lru_cache(maxsize=8)
def _probe(node: str, directory: Path, stamp: tuple[int, int]) -> tuple[str, str | None]:
    """Node's version and why the packages do not load (None: they do). ``stamp`` (the
    binary's and the addon's mtimes) makes a changed installation probed again."""
    script = _PROBE % (json.dumps(str(directory)), json.dumps(list(PACKAGES)))
    try:
        done = subprocess.run(
            [node, *NODE_FLAGS, "-e", script],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            cwd=directory,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeMissing(f"{node} did not run: {exc}") from exc
    try:
        out = json.loads(done.stdout.strip().splitlines()[-1])
        return str(out["version"]), out.get("error")
    except (IndexError, ValueError, KeyError) as exc:
        tail = (done.stdout + done.stderr).strip()[-500:]
        raise RuntimeMissing(f"{node} did not report its version: {tail}") from exc


def locate_runtime(directory: Path = RUNTIME_DIR) -> Runtime:
    """The runtime, or RuntimeMissing saying what is missing."""
    node = _node_binary()
    addon = directory / ADDON
    if not addon.is_file():
        raise RuntimeMissing(
            f"isolated-vm is not installed in {directory}/node_modules "
            "(scripts/bootstrap runs npm ci there)"
        )
    stamp = (os.stat(node).st_mtime_ns, addon.stat().st_mtime_ns)
    version, error = _probe(node, directory, stamp)
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    if major < MIN_NODE_MAJOR:
        raise RuntimeMissing(
            f"Node.js {version} is too old (edge functions need {MIN_NODE_MAJOR} or later)"
        )
    if error is not None:
        raise RuntimeMissing(
            f"the runtime's npm packages do not load in Node.js {version}: {error}"
        )
    return Runtime(node=node, version=version, directory=directory)


def find_runtime(directory: Path = RUNTIME_DIR) -> Runtime | None:
    """The runtime, or None where edge functions cannot run (``locate_runtime`` says why)."""
    try:
        return locate_runtime(directory)
    except RuntimeMissing:
        return None
