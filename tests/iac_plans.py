"""What the infrastructure-as-code tests read from a plan or an apply (``edgeplane.iac``)."""

from __future__ import annotations

from typing import Any


def summary(result: Any) -> dict[str, int]:
    return dict(result.doc()["summary"])


def unchanged(result: Any) -> bool:
    return not any(summary(result).values())


def paths(result: Any) -> dict[str, list[str]]:
    """Per changed object (``section[key]``, a singleton by its section), its action and its
    changed field paths."""
    return {
        (f"{c['section']}[{c['key']}]" if c["section"] != c["key"] else c["section"]): [
            c["action"],
            *sorted(f["path"] for f in c["fields"]),
        ]
        for c in result.doc()["changes"]
    }


def sections_of(doc: dict[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    """The document's given sections."""
    return {s: doc[s] for s in sections if s in doc}
