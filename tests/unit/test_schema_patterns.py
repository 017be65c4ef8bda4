"""Patterns that the OpenAPI document states for rules checked in code (with messages that say
why): a string matches the pattern exactly when the code accepts it, so that schema-valid input
is accepted and the rest refused."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeplane.model.cdn import CACHE_PATTERN, PURGE_PATH_PATTERN, check_pattern
from edgeplane.model.common import control_character
from edgeplane.services.audit import CURSOR_PATTERN
from edgeplane.services.purges import check_path


def cache_ok(value: str) -> bool:
    if control_character(value) is not None:  # Text's rule comes first
        return False
    try:
        check_pattern(value)
    except ValueError:
        return False
    return True


def purge_ok(value: str) -> bool:
    return control_character(value) is None and check_path(value) is None


def cursor_ok(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9]*", value)) and len(value) <= 18  # "": the first page


CASES: list[tuple[str, Callable[[str], bool], list[str]]] = [
    (
        CACHE_PATTERN,
        cache_ok,
        ["/", "/*", "/a/*", "/a/b/*", "/a/b/c/*", "*.css", "*.", "/a b", " /a", "/a?", "x",
         "/a*", "/a/\x00", "*.tar.gz", "/é/*", "/a//*", "//*"],
    ),
    (
        PURGE_PATH_PATTERN,
        purge_ok,
        ["/", "/*", "/a/*", "/a/b/c/d/*", "/a*", "a", "", "/a b", "/a?x", "/a#", "/a/\x85",
         "/" + "a" * 2047, "//", "/*/*"],
    ),
    (
        CURSOR_PATTERN,
        cursor_ok,
        ["1", "0", "", "12a", "\u00b2", "\u0661", "9" * 18, "9" * 19, " 1"],
    ),
]


@pytest.mark.parametrize(("pattern", "accepts", "examples"), CASES)
def test_examples(pattern: str, accepts: Callable[[str], bool], examples: list[str]) -> None:
    for value in examples:
        assert bool(re.fullmatch(pattern, value)) == accepts(value), (pattern, value)


@pytest.mark.parametrize(("pattern", "accepts"), [(p, a) for p, a, _ in CASES])
def test_generated(pattern: str, accepts: Callable[[str], bool]) -> None:
    alphabet = st.sampled_from("/*.?# \t\x00\x85aZ9é-_")

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.from_regex(pattern, fullmatch=True) | st.text(alphabet, max_size=12))
    def agree(value: str) -> None:
        assert bool(re.fullmatch(pattern, value)) == accepts(value), value

    agree()
