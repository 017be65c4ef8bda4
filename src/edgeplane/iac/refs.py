"""The references of a document, resolved where the file is (the CLI, the SDK): secrets and
file contents (``{env: NAME}``, ``{file: PATH}``) get their ``value``; the edge deployment's
``bundle`` names a directory or an archive to upload. Errors name the field and the
reference, never a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeplane.errors import InvalidInput

BUNDLE_ID = re.compile(r"^[0-9a-f]{64}$")


def _is_ref(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and ("env" in value or "file" in value)
        and set(value) <= {"env", "file", "value"}
        and all(isinstance(v, str) for v in value.values())
    )


def resolve(doc: Any, base: Path, environ: Mapping[str, str] | None = None, path: str = "") -> Any:
    """``doc`` with every reference's ``value`` read (files relative to ``base``)."""
    environ = os.environ if environ is None else environ
    if _is_ref(doc):
        if "env" in doc and "file" not in doc:
            name = doc["env"]
            if name not in environ:
                raise InvalidInput.at(path, f"the environment variable {name} is not set")
            return {"env": name, "value": environ[name]}
        if "file" in doc and "env" not in doc:
            target = (base / doc["file"]).expanduser()
            try:
                return {"file": doc["file"], "value": target.read_text()}
            except OSError as exc:
                raise InvalidInput.at(path, f"cannot read {doc['file']}: {exc.strerror}") from None
        return doc  # both: the model says what is wrong
    if isinstance(doc, dict):
        return {
            k: resolve(v, base, environ, f"{path}.{k}" if path else str(k)) for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [resolve(v, base, environ, f"{path}[{_name(v, i)}]") for i, v in enumerate(doc)]
    return doc


def _name(item: Any, index: int) -> str:
    """How an error names a list's item: by its key (``channels[ops]``), else its position."""
    if isinstance(item, dict):
        for key in ("id", "name", "domain", "code"):
            if isinstance(item.get(key), str):
                return str(item[key])
    return str(index)


def bundle_source(doc: dict[str, Any], base: Path) -> Path | None:
    """The directory or archive the edge deployment names, when it names one (not an id)."""
    deployment = doc.get("edge_deployment")
    if not isinstance(deployment, dict):
        return None
    bundle = deployment.get("bundle")
    if not isinstance(bundle, str) or BUNDLE_ID.match(bundle):
        return None
    target = (base / bundle).expanduser()
    if not target.exists():
        raise InvalidInput.at(
            "edge_deployment.bundle",
            f"{bundle} is neither a bundle id nor a directory or archive here",
        )
    return target
