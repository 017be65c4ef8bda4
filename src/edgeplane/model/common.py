"""Building blocks shared by the canonical models: ids, names, capacities, pages."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"

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
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


class Input(BaseModel):
    """A request body: unknown fields are refused, whitespace around strings is kept."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Capacity(Input):
    """Resources in CPU cores, memory GB and storage GB."""

    cpu: float = Field(0.0, ge=0, le=10_000_000, description="CPU cores")
    memory: float = Field(0.0, ge=0, le=1_000_000_000, description="memory, GB")
    storage: float = Field(0.0, ge=0, le=1_000_000_000_000, description="storage, GB")

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
