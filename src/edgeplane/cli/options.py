"""Options that several commands share.

Values are passed to the API as given: the canonical models validate them and name the field
at fault, so the CLI does not repeat (or contradict) their rules. Choices are listed in the
help from the same enumerations the models use.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from edgeplane.model.enums import (
    Environment,
    LBAlgorithm,
    RegionCode,
    RegionType,
    Role,
    ServerStatus,
    ServerType,
)


def choices(enum: type[Enum]) -> str:
    return ", ".join(str(m.value) for m in enum)


Json = Annotated[bool, typer.Option("--json", help="print the API's JSON document")]
Quiet = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="print only the new object's id, e.g. ID=$(edgeplane ... -q)"
    ),
]
Name = Annotated[str | None, typer.Option("--name", help="display name")]
Roles = Annotated[
    list[str] | None,
    typer.Option(
        "--role", metavar="PROJECT=ROLE", help=f"role in a project ({choices(Role)}); repeatable"
    ),
]
Id = Annotated[str | None, typer.Option("--id", help="id (generated when omitted)")]
EnvironmentOpt = Annotated[
    str | None, typer.Option("--environment", "--env", help=choices(Environment))
]
Cpu = Annotated[float | None, typer.Option("--cpu", help="CPU cores")]
Memory = Annotated[float | None, typer.Option("--memory", help="memory, GB")]
Storage = Annotated[float | None, typer.Option("--storage", help="storage, GB")]
ANY_REGION = (
    f"a location (us-east), a region code ({choices(RegionCode)}) "
    f"or a region type ({choices(RegionType)})"
)
RegionOpt = Annotated[str | None, typer.Option("--region", help=ANY_REGION)]
RegionCodeOpt = Annotated[
    str | None,
    typer.Option(
        "--region",
        help=f"region code ({choices(RegionCode)}); a location or region type works too; "
        "derived from --location when omitted",
    ),
]
RegionTypeOpt = Annotated[
    str | None,
    typer.Option(
        "--region",
        help=f"region type ({choices(RegionType)}); a location or region code works too; "
        "derived from --location when omitted",
    ),
]
LbRegionOpt = Annotated[
    str | None,
    typer.Option("--region", help=f"region code ({choices(RegionCode)}) or a location in one"),
]
Location = Annotated[
    str | None,
    typer.Option(
        "--location",
        help="location, e.g. us-east (`edgeplane region list`); must lie in --region",
    ),
]
ServerTypeOpt = Annotated[str | None, typer.Option("--type", help=choices(ServerType))]
ServerStatusOpt = Annotated[str | None, typer.Option("--status", help=choices(ServerStatus))]
Algorithm = Annotated[str | None, typer.Option("--algorithm", "--type", help=choices(LBAlgorithm))]

# Paging
Limit = Annotated[int | None, typer.Option("--limit", help="page size (1-1000)")]
Cursor = Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page")]
All = Annotated[bool, typer.Option("--all", help="walk every page")]


def capacity(cpu: float | None, memory: float | None, storage: float | None) -> dict[str, float]:
    """The dimensions that were given."""
    given = {"cpu": cpu, "memory": memory, "storage": storage}
    return {k: v for k, v in given.items() if v is not None}
