"""Field-level differences between two canonical objects (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeplane.iac.secret import MASK

# What names the dicts of a list: one field, or fields together (DNS records: one RRset per
# name and type, shown as ``records[www A]``).
IDENTITY: tuple[tuple[str, ...], ...] = (("id",), ("name",), ("key",), ("name", "type"))


@dataclass(frozen=True)
class FieldDiff:
    path: str  # "capacity.cpu", "backends[web-1].weight", "records[2].ttl"
    before: Any  # absent: None
    after: Any

    def doc(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


def _label(item: dict[str, Any], names: tuple[str, ...]) -> str:
    return " ".join(str(item[n]) for n in names)


def _names(items: list[Any], names: tuple[str, ...]) -> list[Any]:
    """The items' names in order: the field's value, or the fields' joined."""
    return [i[names[0]] if len(names) == 1 else _label(i, names) for i in items]


def _identity(*lists: list[Any]) -> tuple[str, ...] | None:
    """The fields that name every dict of each list uniquely, if some do."""
    items = [i for lst in lists for i in lst]
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for names in IDENTITY:
        ok = True
        for lst in lists:
            values = [tuple(i.get(n) for n in names) for i in lst]
            typed = all(isinstance(v, str | int) for value in values for v in value)
            if not typed or len(set(values)) < len(values):
                ok = False
        if ok:
            return names
    return None


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def fields(before: Any, after: Any, path: str = "") -> list[FieldDiff]:
    """Where ``after`` differs from ``before``: leaves of dicts, lists of named dicts by name,
    other lists of one length item by item, else the whole value."""
    if before == after:
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[FieldDiff] = []
        for k in sorted(set(before) | set(after)):
            out += fields(before.get(k), after.get(k), _join(path, k))
        return out
    if isinstance(before, list) and isinstance(after, list):
        name = _identity(before, after)
        if name is not None:
            old = {_label(i, name): i for i in before}
            new = {_label(i, name): i for i in after}
            out = []
            for k in [*old, *(k for k in new if k not in old)]:
                out += fields(old.get(k), new.get(k), f"{path}[{k}]")
            if not out:  # the same items in another order
                out.append(FieldDiff(f"{path} (order)", _names(before, name), _names(after, name)))
            return out
        if len(before) == len(after):
            out = []
            for i, (b, a) in enumerate(zip(before, after, strict=True)):
                out += fields(b, a, f"{path}[{i}]")
            return out
    return [FieldDiff(path, before, after)]


def _plain(path: str) -> str:
    """A path without its list positions: ``config.password`` of ``config[0].password``."""
    out, depth = [], 0
    for c in path:
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def masked(diffs: list[FieldDiff], secrets: frozenset[str]) -> list[FieldDiff]:
    """The differences with the values of secret fields (and their parts) hidden."""
    if not secrets:
        return diffs
    out = []
    for d in diffs:
        plain = _plain(d.path)
        if any(plain == s or plain.startswith(s + ".") for s in secrets):
            d = FieldDiff(
                d.path.removesuffix(".digest"),
                None if d.before is None else MASK,
                None if d.after is None else MASK,
            )
        out.append(d)
    return out
