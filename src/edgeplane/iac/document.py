"""The file's top level and its validation into the desired state (one canonical dict per
object, keyed by section and object key).

A resolved document (``edgeplane.iac.template`` has applied its variables and environment
overlay; ``edgeplane.iac.refs`` has resolved its references) has ``version: 1``, optionally
``project``, and any of the sections of ``edgeplane.iac.registry``. A section left out is not
managed by the file: ``apply --prune`` deletes only within the sections the file gives
(``servers: []`` manages servers and wants none).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from edgeplane.errors import EdgeplaneError, InvalidInput
from edgeplane.iac import registry
from edgeplane.iac.kind import Context, Item, Kind
from edgeplane.model.validation import invalid_from_pydantic

VERSION = 1
TOP = ("version", "project")
TEMPLATE = ("variables", "environments")

State = dict[str, dict[str, Item]]  # section -> key -> canonical object


def where(kind: Kind, key: str | None, index: int | None = None) -> str:
    """How a message names an object of the file: ``domains[example.com]``, ``cdn``."""
    if kind.singleton:
        return kind.section
    if key is None:
        return f"{kind.section}[{index}]"
    return f"{kind.section}[{key}]"


def _located(exc: EdgeplaneError, place: str, index: int | None) -> EdgeplaneError:
    """The error with the object's place in front of its field and message."""
    nth = f" (item {index + 1} of the section)" if index is not None else ""
    if isinstance(exc, InvalidInput):
        errors = [
            {
                "field": f"{place}.{e['field']}" if e.get("field") else place,
                # ``InvalidInput.at`` puts its field in front of the reason: once is enough
                "reason": e["reason"].removeprefix(f"{e['field']}: ")
                if e.get("field")
                else e["reason"],
            }
            for e in exc.errors
        ]
        message = f"{place}{nth}: " + "; ".join(
            f"{e['field'].removeprefix(place + '.')}: {e['reason']}" for e in errors
        )
        return InvalidInput(message, field=errors[0]["field"], errors=errors)
    out = type(exc)(f"{place}{nth}: {exc.message}", field=exc.field and f"{place}.{exc.field}")
    out.extra = dict(exc.extra)
    return out


def located(exc: EdgeplaneError, kind: Kind, key: str, index: int | None = None) -> EdgeplaneError:
    return _located(exc, where(kind, key), index)


def check_top(doc: Any) -> None:
    if not isinstance(doc, dict):
        raise InvalidInput.at("document", "must be a mapping of sections (YAML or JSON object)")
    sections = registry.by_section()
    for name in doc:
        if name not in sections and name not in TOP:
            if name in TEMPLATE:
                raise InvalidInput.at(
                    name, "must be resolved before the plan (edgeplane.iac.template)"
                )
            known = ", ".join([*TOP, *sections])
            raise InvalidInput.at(str(name), f"unknown section; the sections are: {known}")
    if doc.get("version", VERSION) != VERSION:
        raise InvalidInput.at("version", f"must be {VERSION}, not {doc.get('version')!r}")


def _validated(kind: Kind, raw: Any, index: int | None) -> tuple[str, BaseModel]:
    key = None
    if isinstance(raw, dict) and not kind.singleton:
        value = raw.get(kind.key)
        key = str(value) if isinstance(value, str | int) else None
    place = where(kind, key, index)
    if not isinstance(raw, dict):
        raise InvalidInput.at(place, "must be a mapping of fields")
    if not kind.singleton and key is None:
        raise InvalidInput.at(f"{place}.{kind.key}", f"is required: it names the {kind.noun}")
    try:
        model = kind.item.model_validate(raw)
    except ValidationError as exc:
        raise _located(invalid_from_pydantic(exc), place, index) from None
    return (key or kind.section), model


Validated = dict[str, list[tuple[str, int | None, BaseModel]]]  # section -> (key, index, item)


def validated(doc: dict[str, Any]) -> Validated:
    """Every item of the document checked against its section's model (no database), by
    section: errors name the object (section and key, and its position) and the field."""
    check_top(doc)
    out: Validated = {}
    for kind in registry.kinds():
        if kind.section not in doc:
            continue
        raw = doc[kind.section]
        items: list[tuple[int | None, Any]]
        if kind.singleton:
            items = [] if raw is None else [(None, raw)]
        else:
            if raw is None:
                raw = []
            if not isinstance(raw, list):
                raise InvalidInput.at(kind.section, f"must be a list of {kind.noun} objects")
            items = list(enumerate(raw))
        seen: set[str] = set()
        section: list[tuple[str, int | None, BaseModel]] = []
        for index, item in items:
            key, model = _validated(kind, item, index)
            if key in seen:
                raise InvalidInput.at(
                    f"{where(kind, key)}.{kind.key}", f"{key!r} is given twice in {kind.section}"
                )
            seen.add(key)
            section.append((key, index, model))
        out[kind.section] = section
    return out


def canonical(
    ctx: Context, kind: Kind, items: list[tuple[str, int | None, BaseModel]]
) -> dict[str, Item]:
    """One section's validated items in canonical form (names resolved in ``ctx.tx``: the
    sections before it have run by then, so a data center may be in a region the file
    creates)."""
    objects: dict[str, Item] = {}
    for key, index, model in items:
        try:
            item = kind.canonical(ctx, model)
        except EdgeplaneError as exc:
            raise _located(exc, where(kind, key), index) from None
        stored = kind.key_of(item)  # the key as stored: a domain's name normalised
        if stored in objects:
            raise InvalidInput.at(
                f"{where(kind, key)}.{kind.key}", f"{stored!r} is given twice in {kind.section}"
            )
        objects[stored] = item
    return objects


def desired(ctx: Context, doc: dict[str, Any]) -> State:
    """The document's objects, validated and canonical, by section and key (against the live
    state as it is: ``edgeplane.iac.engine`` canonicalises section by section as it runs)."""
    by_section = registry.by_section()
    return {
        section: canonical(ctx, by_section[section], items)
        for section, items in validated(doc).items()
    }


def live(ctx: Context, sections: list[str] | None = None) -> State:
    """The live objects of the project, canonical, by section and key."""
    state: State = {}
    for kind in registry.kinds():
        if sections is not None and kind.section not in sections:
            continue
        state[kind.section] = {kind.key_of(item): item for item in kind.read(ctx)}
    return state


def exported(state: State, project: str | None = None) -> dict[str, Any]:
    """The live state as a document (``export``): every section that has objects, fields at
    their default left out, objects in key order."""
    doc: dict[str, Any] = {"version": VERSION}
    if project is not None:
        doc["project"] = project
    for kind in registry.kinds():
        objects = state.get(kind.section)
        if objects is None:
            continue
        items = [kind.exported(objects[k]) for k in sorted(objects) if kind.exportable(objects[k])]
        if items:  # an empty section is left out: not managed by the file
            doc[kind.section] = items[0] if kind.singleton else items
    return doc
