"""Regions: the locations (with coordinates) that servers, data centers and edge nodes sit
in, each with its region code and region type; and what a user means by a region.

``resolve`` turns what was written where a region is asked for (a location such as
``eu-central``, a region code such as ``eu``, a region type such as ``europe``: see
``edgeplane.model.regions``) into a ``Place``. ``locate`` picks the one location an object
needs from the fields that can name it, and refuses, naming the field, a location outside the
region given beside it, or a broad region where a location is needed (listing the locations it
could be).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from edgeplane.errors import Conflict, InvalidInput, NotFound
from edgeplane.model.enums import RegionCode, RegionType
from edgeplane.model.inventory import Region, RegionCreate
from edgeplane.model.regions import VOCABULARIES, broad, describe, region_code_of, region_type_of
from edgeplane.services.common import lock_name, merge_patch, validate
from edgeplane.store.db import Tx
from edgeplane.store.tables import DataCenterRow, RegionRow, ServerRow

KIND = "region"
SHOWN = 12  # locations listed in an error at most


def to_model(row: RegionRow) -> Region:
    return Region(
        code=row.code,
        name=row.name,
        latitude=row.latitude,
        longitude=row.longitude,
        region_code=RegionCode(row.region_code),
        region_type=RegionType(row.area),
        area=RegionType(row.area),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def get_row(tx: Tx, code: str, field: str = "code") -> RegionRow:
    row = tx.session.get(RegionRow, code)
    if row is None:
        if field == "code":
            raise NotFound(f"region {code!r} not found")
        raise InvalidInput.at(
            field, f"unknown region {code!r}; list them with `edgeplane region list`"
        )
    return row


def label(row: RegionRow) -> str:
    """``eu-central (eu, europe)``."""
    return describe(row.code, row.region_code, row.area)


# What a user means by a region --------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """A resolved region: a location (with both parents), a region code (with its type) or a
    region type alone."""

    text: str  # as written (normalized)
    location: RegionRow | None
    region_code: RegionCode | None
    region_type: RegionType

    @property
    def kind(self) -> str:
        if self.location is not None:
            return "location"
        return "region code" if self.region_code is not None else "region type"

    def contains(self, row: RegionRow) -> bool:
        if self.location is not None:
            return row.code == self.location.code
        if self.region_code is not None:
            return row.region_code == self.region_code.value
        return row.area == self.region_type.value

    def __str__(self) -> str:
        if self.location is not None:
            return label(self.location)
        if self.region_code is not None:
            return f"{self.region_code.value} ({self.region_type.value})"
        return self.region_type.value


def resolve(tx: Tx, text: str, field: str) -> Place:
    """What ``text`` names, in any of the three vocabularies; an unknown name is refused at
    ``field``."""
    value = text.strip().lower()
    kind = broad(value)
    if isinstance(kind, RegionCode):
        return Place(value, None, kind, kind.area)
    if isinstance(kind, RegionType):
        return Place(value, None, None, kind)
    row = tx.session.get(RegionRow, value)
    if row is None:
        raise InvalidInput.at(field, f"unknown region {text!r}: expected {VOCABULARIES}")
    return Place(value, row, RegionCode(row.region_code), RegionType(row.area))


def locations_in(tx: Tx, place: Place | None) -> list[RegionRow]:
    """The locations within ``place`` (every location when None), by code."""
    rows = tx.session.scalars(select(RegionRow).order_by(RegionRow.code))
    return [r for r in rows if place is None or place.contains(r)]


def _choices(rows: Sequence[RegionRow]) -> str:
    codes = [r.code for r in rows[:SHOWN]]
    more = f" (and {len(rows) - SHOWN} more)" if len(rows) > SHOWN else ""
    if not codes:
        return "none yet (a platform admin adds them with `edgeplane region create`)"
    return ", ".join(codes) + more


def need_location(tx: Tx, place: Place, field: str, what: str) -> RegionRow:
    """The location ``place`` is, or a refusal at ``field`` listing those it could be."""
    if place.location is not None:
        return place.location
    raise InvalidInput.at(
        field,
        f"{place.text!r} is a {place.kind}, not a location; {what} needs a location: "
        f"one of {_choices(locations_in(tx, place))}",
    )


def locate(
    tx: Tx,
    *,
    region: str | None,
    location: str | None,
    what: str,
    fallback: tuple[RegionRow, str] | None = None,
) -> tuple[RegionRow, Place | None]:
    """The location of an object from its ``region`` and ``location`` fields (either may
    name it, in any vocabulary), else ``fallback`` (a location and where it comes from, such
    as "the location of data center 'dc-1'"). Refuses at ``location``: none named (listing the
    candidates within the region given), or a location outside the ``region`` given.

    Returns the location and what ``region`` resolved to (None when not given)."""
    in_region = resolve(tx, region, "region") if region is not None else None
    at = resolve(tx, location, "location") if location is not None else None
    row: RegionRow | None = None
    source = ""
    if at is not None and at.location is not None:
        row = at.location
    elif in_region is not None and in_region.location is not None:
        row = in_region.location
    elif fallback is not None:
        row, source = fallback[0], f" ({fallback[1]})"
    if row is None:
        if at is not None:
            need_location(tx, at, "location", what)
        where = f" in {in_region.kind} {in_region.text!r}" if in_region is not None else ""
        raise InvalidInput.at(
            "location",
            f"required: {what} needs a location{where}: one of "
            f"{_choices(locations_in(tx, in_region))}",
        )
    for given, field in ((at, "location"), (in_region, "region")):
        if given is None or given.contains(row):
            continue
        if given.location is not None:
            raise InvalidInput.at(
                "location",
                f"{row.code!r}{source} contradicts {field} {given.text!r}, another location",
            )
        raise InvalidInput.at(
            "location",
            f"{row.code!r}{source} lies in {row.region_code} ({row.area}), not in {field} "
            f"{given.text!r}; {given.text} has {_choices(locations_in(tx, given))}",
        )
    return row, in_region


def region_filter(tx: Tx, text: str | None, field: str) -> list[str] | None:
    """The location codes a list filter in any vocabulary stands for (None: no filter)."""
    if text is None or not text.strip():
        return None
    return [r.code for r in locations_in(tx, resolve(tx, text, field))]


# Locations (the regions table) --------------------------------------------------------------


def _parents(spec: RegionCreate) -> tuple[RegionCode, RegionType]:
    if spec.region_code is not None:
        return spec.region_code, spec.region_code.area
    kind = spec.region_type or region_type_of(spec.latitude, spec.longitude)
    return region_code_of(spec.latitude, spec.longitude, kind), kind


def create(tx: Tx, data: RegionCreate | dict[str, Any]) -> Region:
    tx.actor.require_platform_admin()
    spec = validate(RegionCreate, data) if isinstance(data, dict) else data
    lock_name(tx, RegionRow.__tablename__, spec.code)
    if tx.session.get(RegionRow, spec.code) is not None:
        raise Conflict(f"region {spec.code!r} already exists", field="code")
    code, kind = _parents(spec)
    row = RegionRow(
        code=spec.code,
        name=spec.name,
        latitude=spec.latitude,
        longitude=spec.longitude,
        area=kind.value,
        region_code=code.value,
    )
    tx.session.add(row)
    tx.session.flush()
    out = to_model(row)
    tx.record("create", KIND, row.code, None, out.model_dump(mode="json"), global_object=True)
    return out


def get(tx: Tx, code: str) -> Region:
    return to_model(get_row(tx, code))


def list_all(tx: Tx, region: str | None = None) -> list[Region]:
    """Every location by code, or those within ``region`` (in any vocabulary)."""
    where = resolve(tx, region, "region") if region else None
    return [to_model(r) for r in locations_in(tx, where)]


def _require_parents_keep_placements(tx: Tx, row: RegionRow, code: RegionCode) -> None:
    """A location's parents cannot change under the objects placed there with the old ones."""
    dcs = tx.session.scalar(
        select(func.count()).where(
            DataCenterRow.location == row.code, DataCenterRow.region != code.value
        )
    )
    servers = tx.session.scalar(
        select(func.count()).where(
            ServerRow.location == row.code, ServerRow.region != code.area.value
        )
    )
    if dcs or servers:
        raise Conflict(
            f"region_code: {label(row)} is the location of {servers or 0} server(s) and "
            f"{dcs or 0} data "
            f"center(s) placed in its current region; move them before changing it to "
            f"{code.value} ({code.area.value})",
            field="region_code",
        )


def update(tx: Tx, code: str, patch: dict[str, Any]) -> Region:
    tx.actor.require_platform_admin()
    row = get_row(tx, code)
    before = to_model(row)
    current: dict[str, Any] = before.model_dump(
        mode="json", include={"code", "name", "latitude", "longitude"}
    )
    if isinstance(patch, dict) and "region_code" not in patch:
        # The parents the patch leaves out are kept (moving the coordinates keeps them too);
        # a new region type keeps the region code when it has it, else infers one within it.
        wanted = patch.get("region_type", patch.get("area"))
        try:
            new_type = RegionType(wanted) if isinstance(wanted, str) else None
        except ValueError:
            new_type = None
        if wanted is None or new_type is before.region_code.area:
            current["region_code"] = before.region_code.value
    spec = merge_patch(RegionCreate, current, patch, fixed={"code"})
    new_code, new_type = _parents(spec)
    if new_code.value != row.region_code:
        _require_parents_keep_placements(tx, row, new_code)
    row.name, row.latitude, row.longitude = spec.name, spec.latitude, spec.longitude
    row.area, row.region_code = new_type.value, new_code.value
    tx.session.flush()
    after = to_model(row)
    tx.record(
        "update",
        KIND,
        code,
        before.model_dump(mode="json"),
        after.model_dump(mode="json"),
        global_object=True,
    )
    return after


def delete(tx: Tx, code: str) -> None:
    tx.actor.require_platform_admin()
    row = get_row(tx, code)
    servers = tx.session.scalar(select(func.count()).where(ServerRow.location == code)) or 0
    dcs = tx.session.scalar(select(func.count()).where(DataCenterRow.location == code)) or 0
    if servers or dcs:
        raise Conflict(
            f"region {code!r} is the location of {servers} server(s) and {dcs} data center(s); "
            "move or delete them first"
        )
    before = to_model(row)
    tx.session.delete(row)
    tx.record("delete", KIND, code, before.model_dump(mode="json"), None, global_object=True)
