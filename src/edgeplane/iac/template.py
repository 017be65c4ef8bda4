"""The file as written: variables and environments, resolved into one document (pure).

    version: 1
    project: shop                 # default: the CLI's --project
    variables:
      origin: 10.0.0.10           # "${origin}" in any string; a whole "${x}" keeps x's type
    environments:
      staging:
        project: shop-staging     # each environment is a project of its own
        variables: {apex: staging.shop.example}
        overlay:                  # merged into the sections, object by object, by key
          load_balancers:
            - id: web
              algorithm: round_robin
          domains:
            - name: old.shop.example
              $remove: true       # not in this environment
      prod:
        project: shop-prod
        variables: {apex: shop.example}

An overlay item is a JSON merge patch (RFC 7396) of the object with the same key: objects
merge, lists and other values replace, ``null`` removes a field; an item whose key is not in
the section is added; ``$remove: true`` takes the object out. A singleton section's overlay is
one merge patch. ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from edgeplane.errors import InvalidInput
from edgeplane.iac import registry

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_WHOLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}$")
REMOVE = "$remove"
# libyaml's safe loader when PyYAML was built with it (five times faster), else the Python one
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Resolved:
    document: dict[str, Any]
    project: str | None
    environment: str | None


def parse(text: str, name: str = "the file") -> dict[str, Any]:
    """A file's text (YAML, or JSON which YAML reads too) as a mapping."""
    try:
        doc = json.loads(text) if text.lstrip().startswith("{") else yaml.load(text, _Loader)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput.at(
            "document", f"{name} is not valid YAML or JSON{where}: {reason}"
        ) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise InvalidInput.at("document", f"{name} must hold a mapping of sections")
    return doc


def _substitute(value: Any, variables: dict[str, Any], path: str) -> Any:
    if isinstance(value, dict):
        return {
            k: _substitute(v, variables, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, variables, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _WHOLE.match(value)
    if whole:
        return _lookup(whole.group(1), variables, path)
    parts = value.split("$${")
    out = []
    for part in parts:
        out.append(_VAR.sub(lambda m: str(_lookup(m.group(1), variables, path)), part))
    return "${".join(out)


def _lookup(name: str, variables: dict[str, Any], path: str) -> Any:
    if name not in variables:
        known = ", ".join(sorted(variables)) or "none"
        raise InvalidInput.at(path, f"variable ${{{name}}} is not defined (defined: {known})")
    return variables[name]


def merge(current: Any, patch: Any) -> Any:
    """RFC 7396 merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(current) if isinstance(current, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def _overlay(doc: dict[str, Any], overlay: Any, env: str) -> dict[str, Any]:
    where = f"environments.{env}.overlay"
    if overlay is None:
        return doc
    if not isinstance(overlay, dict):
        raise InvalidInput.at(where, "must be a mapping of sections")
    sections = registry.by_section()
    out = dict(doc)
    for section, patch in overlay.items():
        kind = sections.get(section)
        if kind is None:
            raise InvalidInput.at(f"{where}.{section}", "unknown section")
        if kind.singleton:
            out[section] = None if patch is None else merge(out.get(section), patch)
            continue
        if not isinstance(patch, list):
            raise InvalidInput.at(f"{where}.{section}", f"must be a list of {kind.noun} patches")
        items = list(out.get(section) or [])
        index = {str(i.get(kind.key)): n for n, i in enumerate(items) if isinstance(i, dict)}
        for n, item in enumerate(patch):
            if not isinstance(item, dict) or kind.key not in item:
                raise InvalidInput.at(
                    f"{where}.{section}[{n}].{kind.key}",
                    "is required: it names the object to patch",
                )
            key = str(item[kind.key])
            body = {k: v for k, v in item.items() if k != REMOVE}
            if key in index:
                if item.get(REMOVE):
                    items[index[key]] = None
                else:
                    items[index[key]] = merge(items[index[key]], body)
            elif not item.get(REMOVE):
                index[key] = len(items)
                items.append(body)
        out[section] = [i for i in items if i is not None]
    return out


def resolve(
    source: dict[str, Any], environment: str | None = None, overrides: dict[str, Any] | None = None
) -> Resolved:
    """The document for ``environment`` (none: the file without overlays), its variables
    substituted (``overrides`` win), and the project it is for."""
    doc = dict(source)
    variables = doc.pop("variables", None) or {}
    environments = doc.pop("environments", None) or {}
    if not isinstance(variables, dict):
        raise InvalidInput.at("variables", "must be a mapping of names to values")
    if not isinstance(environments, dict):
        raise InvalidInput.at("environments", "must be a mapping of environment names")
    project = doc.get("project")
    if environment is not None:
        env = environments.get(environment)
        if env is None:
            known = ", ".join(sorted(environments)) or "none"
            raise InvalidInput.at(
                "environment", f"{environment!r} is not in the file's environments ({known})"
            )
        if not isinstance(env, dict):
            raise InvalidInput.at(f"environments.{environment}", "must be a mapping")
        unknown = set(env) - {"project", "variables", "overlay"}
        if unknown:
            raise InvalidInput.at(
                f"environments.{environment}.{sorted(unknown)[0]}",
                "unknown field (project, variables, overlay)",
            )
        variables = {**variables, **(env.get("variables") or {})}
        project = env.get("project", project)
        doc = _overlay(doc, env.get("overlay"), environment)
    variables = {**variables, **(overrides or {})}
    doc = _substitute(doc, variables, "")
    if project is not None:
        doc["project"] = project
    return Resolved(doc, project if isinstance(project, str) else None, environment)


def environments(source: dict[str, Any]) -> dict[str, str | None]:
    """The file's environments and the project each is for."""
    envs = source.get("environments") or {}
    return (
        {name: (e or {}).get("project") for name, e in envs.items()}
        if isinstance(envs, dict)
        else {}
    )
