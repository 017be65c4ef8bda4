"""Schemathesis hooks of ``test_fuzz_api``: the fuzzer never revokes its own token (the one in
``EDGEPLANE_FUZZ_TOKEN_ID``), which would turn every later request into a 401."""

from __future__ import annotations

import os
from typing import Any

import schemathesis


@schemathesis.hook
def filter_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> bool:
    own = os.environ.get("EDGEPLANE_FUZZ_TOKEN_ID")
    return not (own and path_parameters and path_parameters.get("token_id") == own)
