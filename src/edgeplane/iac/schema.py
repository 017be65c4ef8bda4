"""The file's JSON Schema, made of the sections' item models: for editors (YAML language
servers take ``# yaml-language-server: $schema=...``) and published at ``/api/v1/iac/schema``."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from edgeplane.iac import registry
from edgeplane.iac.document import VERSION


class Environment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str | None = Field(None, description="the project this environment is")
    variables: dict[str, Any] = Field(default_factory=dict)
    overlay: dict[str, Any] = Field(
        default_factory=dict,
        description="per section, merge patches of objects by key ($remove: true takes one out)",
    )


@cache
def document_schema() -> dict[str, Any]:
    fields: dict[str, Any] = {
        "version": (Literal[1], Field(VERSION, description="the format's version")),
        "project": (str | None, Field(None, description="the project (default: --project)")),
        "variables": (
            dict[str, Any],
            Field(default_factory=dict, description='"${name}" in any string is replaced'),
        ),
        "environments": (
            dict[str, Environment],
            Field(default_factory=dict, description="dev, staging, prod...: one project each"),
        ),
    }
    for kind in registry.kinds():
        item: Any = kind.item
        typ = (item | None) if kind.singleton else (list[item] | None)
        fields[kind.section] = (typ, Field(None, description=f"the project's {kind.noun} objects"))
    model = create_model("EdgeplaneFile", __config__=ConfigDict(extra="forbid"), **fields)
    schema: dict[str, Any] = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://edgeplane.dev/schemas/edgeplane-file-v1.json"
    schema["title"] = "Edgeplane file"
    return schema
