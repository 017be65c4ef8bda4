"""Fixtures the integration modules share: a temporary folder per module, and an admin client
of the module's control plane (each module starts its own ``cp``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_agents import Api, searchable_tmp
from processes import ControlPlane
from sshd import sshd_host  # noqa: F401 (a fixture: an OpenSSH server in a namespace)


@pytest.fixture(scope="module")
def tmp_module(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder nginx workers can traverse, named for the module, removed after it."""
    name = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    path = searchable_tmp(name.replace("_", "-") + "-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def admin(cp: ControlPlane) -> Iterator[Api]:
    """The module's control plane as an admin of the default project."""
    api = Api(cp)
    yield api
    api.close()
