"""Tests for edgeplane.routing.placement."""

from __future__ import annotations

import json
import random

import pytest

from edgeplane.routing.distance import haversine_km
from edgeplane.routing.geoip import country_centroids
from edgeplane.routing.placement import (
    DEFAULT_LATENCY_TARGET_MS,
    EXACT_MAX_CANDIDATES,
    FREE_REGIONS,
    PRICE_PER_REGION_MONTH,
    Candidate,
    Placement,
    PlacementError,
    UserLocation,
    estimated_rtt_ms,
    parse_location,
    place,
    region_cost_per_month,
)

EU_CENTRAL = Candidate("eu-central", 50.11, 8.68)  # Frankfurt
US_EAST = Candidate("us-east", 39.04, -77.49)  # Ashburn
AP_NORTHEAST = Candidate("ap-northeast", 35.68, 139.69)  # Tokyo
EU_WEST = Candidate("eu-west", 53.35, -6.26)  # Dublin
US_WEST = Candidate("us-west", 37.77, -122.42)  # San Francisco
SA_EAST = Candidate("sa-east", -23.55, -46.63)  # São Paulo
REGIONS = [EU_CENTRAL, US_EAST, AP_NORTHEAST, EU_WEST, US_WEST, SA_EAST]

BERLIN = UserLocation("Berlin", 52.52, 13.405)
PARIS = UserLocation("Paris", 48.8566, 2.3522)
NEW_YORK = UserLocation("New York", 40.7128, -74.006)
TOKYO = UserLocation("Tokyo", 35.6762, 139.6503)
SAO_PAULO = UserLocation("São Paulo", -23.5505, -46.6333)
SYDNEY = UserLocation("Sydney", -33.8688, 151.2093)


def weighted(user: UserLocation, weight: float) -> UserLocation:
    return UserLocation(user.label, user.latitude, user.longitude, weight)


def served_from(placement: Placement) -> dict[str, str]:
    return {u.label: u.region for u in placement.users}


# --- cost and latency models ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "cost"), [(0, 0.0), (1, 0.0), (3, 0.0), (4, 5.0), (5, 10.0), (10, 35.0)]
)
def test_region_cost_per_month(n: int, cost: float) -> None:
    assert region_cost_per_month(n) == cost


def test_pricing_constants() -> None:
    assert (FREE_REGIONS, PRICE_PER_REGION_MONTH, DEFAULT_LATENCY_TARGET_MS) == (3, 5.0, 100.0)


def test_estimated_rtt_model() -> None:
    assert estimated_rtt_ms(0) == 5.0
    # 1000 km: 1500 km of fibre each way, 3000 km at 200 km/ms = 15 ms, plus 5.
    assert estimated_rtt_ms(1000) == pytest.approx(20.0)
    assert estimated_rtt_ms(6333.33) == pytest.approx(100.0, abs=0.01)


# --- all --------------------------------------------------------------------------------------


def test_all_takes_every_live_candidate_sorted() -> None:
    p = place("all", REGIONS)
    assert p.strategy == "all"
    assert p.regions == (
        "ap-northeast",
        "eu-central",
        "eu-west",
        "sa-east",
        "us-east",
        "us-west",
    )
    assert p.cost_per_month == 15.0
    assert p.users == ()
    assert p.latency_target_ms is None
    assert "6 regions" in p.reason and "15" in p.reason


def test_all_ignores_regions_without_live_nodes() -> None:
    dead = Candidate("ap-south", 19.08, 72.88, nodes=0)
    p = place("all", [*REGIONS[:3], dead])
    assert p.regions == ("ap-northeast", "eu-central", "us-east")
    assert p.cost_per_month == 0.0
    assert "free" in p.reason


def test_all_serves_users_from_nearest_and_checks_target() -> None:
    p = place("all", REGIONS, [BERLIN, SYDNEY], latency_target_ms=100)
    by_label = {u.label: u for u in p.users}
    assert by_label["Berlin"].region == "eu-central"
    assert by_label["Berlin"].meets_target is True
    assert by_label["Sydney"].region == "ap-northeast"
    assert by_label["Sydney"].meets_target is False
    assert "1 of 2 locations within 100 ms" in p.reason


def test_all_without_target_has_no_verdict() -> None:
    p = place("all", REGIONS, [BERLIN])
    assert p.users[0].meets_target is None


def test_all_over_max_regions_is_an_error() -> None:
    with pytest.raises(PlacementError) as info:
        place("all", REGIONS, max_regions=3)
    assert info.value.field == "max_regions"


# --- closest ------------------------------------------------------------------------------


def test_closest_ranks_regions_by_traffic_share() -> None:
    users = [weighted(BERLIN, 7), weighted(NEW_YORK, 3)]
    p = place("closest", REGIONS, users)
    assert p.regions == ("eu-central", "us-east")
    assert served_from(p) == {"Berlin": "eu-central", "New York": "us-east"}
    assert p.reason.startswith("eu-central is nearest to 70% of the traffic, us-east to 30%")
    assert p.cost_per_month == 0.0


def test_closest_only_takes_regions_that_are_nearest_to_someone() -> None:
    p = place("closest", REGIONS, [BERLIN, PARIS, TOKYO])
    assert p.regions == ("ap-northeast", "eu-central")


def test_closest_max_regions_cuts_smallest_share_and_reroutes_its_users() -> None:
    users = [weighted(BERLIN, 5), weighted(NEW_YORK, 3), weighted(TOKYO, 2)]
    p = place("closest", REGIONS, users, max_regions=2)
    assert p.regions == ("eu-central", "us-east")
    # Tokyo's nearest region (ap-northeast) was cut; its nearest chosen one is eu-central.
    assert served_from(p)["Tokyo"] == "eu-central"
    tokyo = next(u for u in p.users if u.label == "Tokyo")
    assert tokyo.distance_km == pytest.approx(
        haversine_km(TOKYO.latitude, TOKYO.longitude, EU_CENTRAL.latitude, EU_CENTRAL.longitude)
    )
    assert "ap-northeast (20%)" in p.reason


def test_closest_ranking_ties_go_to_lower_code() -> None:
    # Equal traffic to two regions, cap of one: the lower code stays.
    p = place("closest", REGIONS, [BERLIN, TOKYO], max_regions=1)
    assert p.regions == ("ap-northeast",)


def test_closest_nearest_ties_go_to_lower_code() -> None:
    twins = [Candidate("b-twin", 10.0, 10.0), Candidate("a-twin", 10.0, 10.0)]
    p = place("closest", twins, [UserLocation("here", 11.0, 11.0)])
    assert p.regions == ("a-twin",)


def test_closest_with_target_marks_users() -> None:
    p = place("closest", [EU_CENTRAL], [BERLIN, TOKYO], latency_target_ms=50)
    assert {u.label: u.meets_target for u in p.users} == {"Berlin": True, "Tokyo": False}
    assert p.latency_target_ms == 50.0


def test_closest_needs_users() -> None:
    with pytest.raises(PlacementError) as info:
        place("closest", REGIONS)
    assert info.value.field == "locations"
    assert "no traffic yet" in str(info.value)


# --- cheapest ----------------------------------------------------------------------------


def test_cheapest_one_region_for_nearby_users() -> None:
    p = place("cheapest", REGIONS, [BERLIN, PARIS])
    assert p.regions == ("eu-central",)
    assert p.latency_target_ms == DEFAULT_LATENCY_TARGET_MS
    assert all(u.meets_target for u in p.users)
    assert p.reason.startswith("1 region serves every location within 100 ms")


def test_cheapest_transatlantic_needs_two_regions_at_a_tight_target() -> None:
    # Frankfurt-New York is ~6200 km, ~98 ms in the model: inside 100 ms, outside 80.
    p = place("cheapest", REGIONS, [BERLIN, NEW_YORK], latency_target_ms=80)
    assert p.regions == ("eu-central", "us-east")
    assert served_from(p) == {"Berlin": "eu-central", "New York": "us-east"}
    assert p.reason.startswith("2 regions serve every location within 80 ms")


def test_cheapest_transatlantic_fits_one_region_at_100_ms() -> None:
    p = place("cheapest", REGIONS, [BERLIN, NEW_YORK])
    assert len(p.regions) == 1
    assert all(u.meets_target for u in p.users)


def test_cheapest_breaks_size_ties_by_weighted_rtt() -> None:
    # Both Dublin and Frankfurt reach Berlin and New York within 100 ms.  With equal
    # traffic Dublin is better overall (25 + 82 ms against 11 + 98 ms); when Berlin has
    # most of the traffic, Frankfurt is.
    even = place("cheapest", REGIONS, [BERLIN, NEW_YORK])
    assert even.regions == ("eu-west",)
    berlin_heavy = place("cheapest", REGIONS, [weighted(BERLIN, 3), NEW_YORK])
    assert berlin_heavy.regions == ("eu-central",)


def test_cheapest_breaks_full_ties_by_code() -> None:
    twins = [Candidate("b-twin", 10.0, 10.0), Candidate("a-twin", 10.0, 10.0)]
    p = place("cheapest", twins, [UserLocation("here", 11.0, 11.0)])
    assert p.regions == ("a-twin",)


def test_cheapest_four_continents() -> None:
    users = [BERLIN, NEW_YORK, TOKYO, SAO_PAULO]
    p = place("cheapest", REGIONS, users)
    assert len(p.regions) == 3
    assert {"ap-northeast", "sa-east"} <= set(p.regions)
    assert all(u.meets_target for u in p.users)
    assert p.cost_per_month == 0.0
    assert "free" in p.reason


def test_cheapest_four_regions_cost_money() -> None:
    users = [BERLIN, NEW_YORK, TOKYO, SAO_PAULO]
    p = place("cheapest", REGIONS, users, latency_target_ms=20)
    assert p.regions == ("ap-northeast", "eu-central", "sa-east", "us-east")
    assert p.cost_per_month == 5.0
    assert "USD 5/month" in p.reason


def test_cheapest_unreachable_location_is_served_by_its_nearest_region() -> None:
    p = place("cheapest", REGIONS, [BERLIN, NEW_YORK, SYDNEY])
    assert "ap-northeast" in p.regions
    sydney = next(u for u in p.users if u.label == "Sydney")
    assert sydney.region == "ap-northeast"
    assert sydney.meets_target is False
    assert sydney.rtt_ms > 100
    assert len(p.regions) == 2
    assert "except Sydney (ap-northeast, 122 ms)" in p.reason


def test_cheapest_only_unreachable_locations() -> None:
    p = place("cheapest", REGIONS, [SYDNEY])
    assert p.regions == ("ap-northeast",)
    assert p.users[0].meets_target is False
    assert "no region is within 100 ms" in p.reason


def test_cheapest_needs_users() -> None:
    with pytest.raises(PlacementError) as info:
        place("cheapest", REGIONS, [])
    assert info.value.field == "locations"


def test_cheapest_over_max_regions_is_an_error() -> None:
    with pytest.raises(PlacementError) as info:
        place("cheapest", REGIONS, [BERLIN, TOKYO, SAO_PAULO], max_regions=2)
    assert info.value.field == "max_regions"
    assert "3 regions" in str(info.value)
    assert place("cheapest", REGIONS, [BERLIN, TOKYO, SAO_PAULO], max_regions=3).regions


# A set-cover instance where greedy is not optimal, on a 500 km grid near the equator.
# User locations a0 a1 a2 (bottom row) and b0 b1 b2 (top row); a 12.5 ms target reaches
# 500 km.  "row-a"/"row-b" each reach one row; "col-N" reaches column N.  Weights make a
# column (8) outweigh a row (7), so greedy picks col-2, col-1, col-0; the optimum is the
# two rows.
_U = 4.5  # degrees, ~500 km
_GRID_TARGET = estimated_rtt_ms(500.0)
_GRID_USERS = [
    UserLocation(f"{row}{i}", lat, (i - 1) * 0.9 * _U, weight)
    for row, lat in (("a", 0.0), ("b", 1.2 * _U))
    for i, weight in enumerate((1.0, 2.0, 4.0))
]
_GRID_CANDIDATES = [
    Candidate("row-a", -0.3 * _U, 0.0),
    Candidate("row-b", 1.5 * _U, 0.0),
    *(Candidate(f"col-{i}", 0.6 * _U, (i - 1) * 0.9 * _U) for i in range(3)),
]


def test_cheapest_exact_search_finds_the_optimum_greedy_misses() -> None:
    p = place("cheapest", _GRID_CANDIDATES, _GRID_USERS, latency_target_ms=_GRID_TARGET)
    assert p.regions == ("row-a", "row-b")
    assert all(u.meets_target for u in p.users)


def test_cheapest_beyond_16_candidates_uses_greedy_set_cover() -> None:
    # Far-away live candidates that reach nobody push the count past the exact bound.
    padding = [Candidate(f"far-{i:02}", -60.0, -170.0 + 10 * i) for i in range(15)]
    candidates = [*_GRID_CANDIDATES, *padding]
    assert len(candidates) > EXACT_MAX_CANDIDATES
    p = place("cheapest", candidates, _GRID_USERS, latency_target_ms=_GRID_TARGET)
    assert p.regions == ("col-0", "col-1", "col-2")
    assert all(u.meets_target for u in p.users)


def test_greedy_set_cover_drops_regions_made_redundant() -> None:
    # Four user locations in a line 500 km apart; "mid" reaches the two heavy middle
    # ones, "left" and "right" a light end and a heavy neighbour each.  Greedy takes
    # mid first, then left and right, which make mid redundant.
    users = [UserLocation(f"u{i}", 0.0, i * _U, weight) for i, weight in enumerate((1, 10, 10, 1))]
    line = [
        Candidate("left", 0.0, 0.5 * _U),
        Candidate("mid", 0.0, 1.5 * _U),
        Candidate("right", 0.0, 2.5 * _U),
    ]
    padding = [Candidate(f"far-{i:02}", -60.0, -170.0 + 10 * i) for i in range(15)]
    p = place("cheapest", [*line, *padding], users, latency_target_ms=_GRID_TARGET)
    assert p.regions == ("left", "right")
    assert all(u.meets_target for u in p.users)


def test_cheapest_more_than_five_regions_falls_back_to_greedy() -> None:
    # Every user sits at a region and the target only reaches ~100 km: six regions.
    users = [UserLocation(c.code, c.latitude, c.longitude) for c in REGIONS]
    p = place("cheapest", REGIONS, users, latency_target_ms=6.5)
    assert len(p.regions) == 6
    assert all(u.meets_target for u in p.users)
    assert p.cost_per_month == 15.0


# --- determinism ------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["all", "closest", "cheapest"])
def test_same_placement_whatever_the_input_order(strategy: str) -> None:
    users = [
        weighted(BERLIN, 2),
        PARIS,
        weighted(NEW_YORK, 3),
        TOKYO,
        SAO_PAULO,
        SYDNEY,
        UserLocation("Mumbai", 19.07, 72.88, 0.5),
    ]
    reference = place(strategy, REGIONS, users, latency_target_ms=90, max_regions=None)
    rng = random.Random(7)
    for _ in range(10):
        cands, locs = REGIONS[:], users[:]
        rng.shuffle(cands)
        rng.shuffle(locs)
        assert place(strategy, cands, locs, latency_target_ms=90) == reference
    assert [u.label for u in reference.users] == sorted(u.label for u in users)


# --- errors -----------------------------------------------------------------------------


def test_unknown_strategy() -> None:
    with pytest.raises(PlacementError) as info:
        place("fastest", REGIONS, [BERLIN])
    assert info.value.field == "strategy"
    assert "fastest" in str(info.value)


def test_no_live_candidates() -> None:
    with pytest.raises(PlacementError) as info:
        place("all", [Candidate("eu-central", 50.11, 8.68, nodes=0)])
    assert info.value.field == "regions"
    assert str(info.value) == "no candidate region has a live edge node"
    with pytest.raises(PlacementError) as info:
        place("cheapest", [], [BERLIN])
    assert info.value.field == "regions"


def test_duplicate_candidate() -> None:
    with pytest.raises(PlacementError) as info:
        place("all", [EU_CENTRAL, EU_CENTRAL])
    assert info.value.field == "regions"


@pytest.mark.parametrize("target", [0, -5, float("nan"), float("inf")])
def test_bad_latency_target(target: float) -> None:
    with pytest.raises(PlacementError) as info:
        place("cheapest", REGIONS, [BERLIN], latency_target_ms=target)
    assert info.value.field == "latency_target_ms"


def test_bad_max_regions() -> None:
    with pytest.raises(PlacementError) as info:
        place("closest", REGIONS, [BERLIN], max_regions=0)
    assert info.value.field == "max_regions"


def test_bad_user_location_object() -> None:
    with pytest.raises(PlacementError) as info:
        place("closest", REGIONS, [UserLocation("nowhere", 91.0, 0.0)])
    assert info.value.field == "locations"
    with pytest.raises(PlacementError) as info:
        place("closest", REGIONS, [weighted(BERLIN, 0)])
    assert info.value.field == "locations"


def test_placement_error_is_a_value_error() -> None:
    assert issubclass(PlacementError, ValueError)


# --- to_dict ----------------------------------------------------------------------------


def test_to_dict_is_json_and_complete() -> None:
    p = place("cheapest", REGIONS, [BERLIN, SYDNEY])
    data = json.loads(json.dumps(p.to_dict()))
    assert data["strategy"] == "cheapest"
    assert data["regions"] == list(p.regions)
    assert data["cost_per_month"] == 0.0
    assert data["latency_target_ms"] == 100.0
    assert data["reason"] == p.reason
    assert [u["label"] for u in data["users"]] == ["Berlin", "Sydney"]
    sydney = data["users"][1]
    assert set(sydney) == {"label", "weight", "region", "distance_km", "rtt_ms", "meets_target"}
    assert sydney["region"] == "ap-northeast"
    assert sydney["meets_target"] is False


# --- parse_location ----------------------------------------------------------------------


def test_parse_country_code_any_case() -> None:
    lat, lon = country_centroids()["DE"]
    assert parse_location("DE") == UserLocation("DE", lat, lon, 1.0)
    assert parse_location(" de ") == UserLocation("DE", lat, lon, 1.0)


def test_parse_country_with_weight() -> None:
    loc = parse_location("DE@3")
    assert (loc.label, loc.weight) == ("DE", 3.0)
    assert (loc.latitude, loc.longitude) == country_centroids()["DE"]


def test_parse_coordinates() -> None:
    assert parse_location("52.52,13.405") == UserLocation("52.52,13.405", 52.52, 13.405, 1.0)
    assert parse_location(" -23.55 , -46.63 @ 0.5") == UserLocation(
        "-23.55,-46.63", -23.55, -46.63, 0.5
    )


def test_parse_dict_coordinates() -> None:
    loc = parse_location({"latitude": 40.71, "longitude": -74, "weight": 2, "label": "NYC"})
    assert loc == UserLocation("NYC", 40.71, -74.0, 2.0)
    assert parse_location({"latitude": 1, "longitude": 2}).label == "1,2"


def test_parse_dict_country() -> None:
    loc = parse_location({"country": "jp", "weight": 2})
    assert (loc.label, loc.weight) == ("JP", 2.0)
    assert (loc.latitude, loc.longitude) == country_centroids()["JP"]
    assert parse_location({"country": "JP", "label": "Japan"}).label == "Japan"


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("95,10", "latitude 95 is outside -90..90"),
        ("10,190", "longitude 190 is outside -180..180"),
        ("XX", "unknown country code 'XX'"),
        ("Germany", "country code"),
        ("DEU", "country code"),
        ("", "empty location"),
        ("@2", "empty location"),
        ("DE@0", "weight 0 must be positive"),
        ("DE@-1", "weight -1 must be positive"),
        ("DE@heavy", "weight 'heavy' is not a number"),
        ("DE@", "weight '' is not a number"),
        ("nan,10", "not a finite number"),
        ("north,10", "latitude 'north' is not a number"),
        ("1,2,3", "'lat,lon'"),
        ({"latitude": -91, "longitude": 0}, "latitude -91 is outside -90..90"),
        ({"latitude": 10}, "needs latitude and longitude"),
        ({"latitude": "10", "longitude": 5}, "latitude '10' is not a number"),
        ({"latitude": True, "longitude": 5}, "latitude True is not a number"),
        ({"lat": 10, "lon": 5}, "unknown key(s) lat, lon"),
        ({"country": "ZZ"}, "unknown country code 'ZZ'"),
        ({"country": 49}, "not an ISO 3166 alpha-2 code"),
        ({"country": "DE", "latitude": 1, "longitude": 2}, "not both"),
        ({"country": "DE", "weight": 0}, "weight 0 must be positive"),
        ({"country": "DE", "label": ""}, "label must be a non-empty string"),
        (42, "expected a country code"),
    ],
)
def test_parse_location_errors_name_the_entry_and_why(entry: object, why: str) -> None:
    with pytest.raises(PlacementError) as info:
        parse_location(entry)  # type: ignore[arg-type]
    assert info.value.field == "locations"
    message = str(info.value)
    assert why in message
    assert repr(entry) in message
