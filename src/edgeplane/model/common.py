"""Building blocks shared by the canonical models: ids, names, text, numbers, capacities, pages.

Input models use the annotated types of this module for their scalars, so that every model,
nested ones included, holds the same rules and its JSON schema says them:

- ``Text``: no control characters (C0, DEL, C1; NUL is refused by PostgreSQL and the others
  are invisible or break lines in logs, configs and tables); ``MultilineText`` allows tab,
  line feed and carriage return, for what is multi-line by nature (PEM data, an engine's error
  output), ``TabText`` tab alone (DNS values); ``Name``: a ``Text`` that is not blank,
  stripped, at most 200 characters.
- ``Int`` and ``Float``: JSON numbers only, never a boolean nor a string (``true`` is not 1);
  an ``Int`` also takes a whole number written ``1.0`` and a ``Float`` takes integers.
- ``Bool``: JSON ``true`` / ``false`` only (not 0, 1, "yes").
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    StringConstraints,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"

# Control characters: C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F).
CONTROLS = r"\x00-\x1f\x7f-\x9f"
# The same but tab (TAB_CONTROLS), or tab, line feed and carriage return (MULTILINE_CONTROLS).
TAB_CONTROLS = r"\x00-\x08\x0a-\x1f\x7f-\x9f"
MULTILINE_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
TEXT_PATTERN = f"^[^{CONTROLS}]*$"
_REFUSED = {"": CONTROLS, "\t": TAB_CONTROLS, "\t\n\r": MULTILINE_CONTROLS}
_SEARCH = {allow: re.compile(f"[{chars}]") for allow, chars in _REFUSED.items()}


def control_character(value: str, *, allow: str = "") -> str | None:
    """Why ``value`` is refused for a control character it holds, or None. ``allow``: "",
    "\t" or "\t\n\r"."""
    m = _SEARCH[allow].search(value)
    if m is None:
        return None
    return f"must not contain control characters (U+{ord(m.group()):04X} at {m.start()})"


@dataclass(frozen=True)
class NoControls:
    """Refuses control characters in a string and says so in its JSON schema (``pattern``,
    unless the field has a pattern of its own, which then must exclude them too)."""

    allow: str = ""  # "", "\t" or "\t\n\r"
    pattern: str | None = None  # the schema's pattern, when stricter than the default

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        if out.get("type") == "string":
            out.setdefault("pattern", self.pattern or f"^[^{_REFUSED[self.allow]}]*$")
        return out

    def _check(self, value: str) -> str:
        reason = control_character(value, allow=self.allow)
        if reason is not None:
            raise PydanticCustomError("control_character", reason)
        return value


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "number_type", "must be a number, not {kind}", {"kind": _kind(value)}
        )
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    kinds: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}
    return kinds.get(type(value), "that")


def _iso_datetime(value: Any) -> Any:
    if not isinstance(value, str) or re.fullmatch(r"\s*[-+]?[0-9.eE+-]*\s*", value):
        raise PydanticCustomError(
            "datetime_type", "must be an ISO 8601 date and time, e.g. 2026-01-31T12:00:00Z"
        )
    return value


DateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]
"""A date and time written in ISO 8601 (not a number of seconds)."""

Text = Annotated[str, NoControls()]
TabText = Annotated[str, NoControls(allow="\t")]
MultilineText = Annotated[str, NoControls(allow="\t\n\r")]
Int = Annotated[int, BeforeValidator(_number)]
Float = Annotated[float, BeforeValidator(_number)]
Bool = Annotated[bool, Strict()]

ObjectId = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN),
    Field(
        description="lower-case letters, digits, '.', '_' and '-', 1-63 characters, "
        "starting with a letter or digit",
        examples=["server-123"],
    ),
]
RegionCodeStr = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$"),
    Field(description="a region code such as us-east", examples=["us-east"]),
]


def _not_blank(value: str) -> str:
    text = value.strip()
    if not text:
        raise PydanticCustomError("blank", "must not be blank")
    return text


# At least one character that is neither a control nor white space (what strip() removes).
NAME_PATTERN = f"^[^{CONTROLS}]*[^\\s{CONTROLS}][^{CONTROLS}]*$"
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    NoControls(pattern=NAME_PATTERN),
    AfterValidator(_not_blank),
]
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


class Input(BaseModel):
    """A request body: unknown fields are refused, whitespace around strings is kept."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Capacity(Input):
    """Resources in CPU cores, memory GB and storage GB."""

    cpu: Float = Field(0.0, ge=0, le=10_000_000, description="CPU cores")
    memory: Float = Field(0.0, ge=0, le=1_000_000_000, description="memory, GB")
    storage: Float = Field(0.0, ge=0, le=1_000_000_000_000, description="storage, GB")

    def fits_in(self, free: Capacity) -> str | None:
        """The first dimension that does not fit, or None."""
        for dim in ("cpu", "memory", "storage"):
            if getattr(self, dim) > getattr(free, dim) + 1e-9:
                return dim
        return None

    def __add__(self, other: Capacity) -> Capacity:
        return Capacity(
            cpu=self.cpu + other.cpu,
            memory=self.memory + other.memory,
            storage=self.storage + other.storage,
        )

    def __sub__(self, other: Capacity) -> Capacity:
        return Capacity.model_construct(
            cpu=self.cpu - other.cpu,
            memory=self.memory - other.memory,
            storage=self.storage - other.storage,
        )


class CapacityReport(Output):
    total: Capacity
    allocated: Capacity
    free: Capacity


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass ``next_cursor`` as ``cursor`` to get the next."""

    items: list[T]
    next_cursor: str | None = None


def jsonable(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def no_default(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` of a field that may be left out but has no value of its own (a
    patch's field: left out, it keeps the current value)."""
    schema.pop("default", None)


_PATCH_MODELS: dict[type[BaseModel], type[Input]] = {}


def patch_model(model: type[Input]) -> type[Input]:
    """The body of a JSON merge patch (RFC 7396) of ``model``: every field optional, unknown
    fields refused, nested objects patches of their own, ``null`` in a map removing its key.
    Types and ranges are checked against it; the merged whole is then validated by ``model``
    itself (and fields such as ids may only repeat their current value)."""
    key = model
    if key in _PATCH_MODELS:
        return _PATCH_MODELS[key]
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        args = get_args(annotation)
        nullable = type(None) in args
        inner = (
            next((a for a in args if a is not type(None)), annotation) if nullable else annotation
        )
        if isinstance(inner, type) and issubclass(inner, Input):
            annotation = patch_model(inner) | None if nullable else patch_model(inner)
            field = FieldInfo(default=None, description=info.description)
            field.json_schema_extra = no_default
        else:
            if get_origin(inner) is dict:
                key_type, value_type = get_args(inner)
                annotation = dict[key_type, value_type | None]  # type: ignore[valid-type]
                annotation = annotation | None if nullable else annotation
            field = FieldInfo.merge_field_infos(info, default=None)
            field.default_factory = None
            # Optional, and nullable only where the model's field is: leaving a field out
            # keeps its value, null clears an optional one.
            field.json_schema_extra = no_default
        fields[name] = (annotation, field)
    patch = create_model(
        f"{model.__name__.removesuffix('Create')}Fields",
        __base__=Input,
        __doc__=f"A JSON merge patch of {model.__name__}: the fields to change.",
        **fields,
    )
    _PATCH_MODELS[key] = patch
    return patch
