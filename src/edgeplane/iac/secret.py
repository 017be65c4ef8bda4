"""Secrets in the file: never their value, a reference to where the value is.

In the file a secret is ``{env: NAME}`` (an environment variable of the machine that runs
``plan`` / ``apply``) or ``{file: PATH}`` (a file's content, the path relative to the file).
The client resolves the reference (``edgeplane.iac.refs``) and sends the value alongside it;
the control plane uses the value, compares it by a digest, and keeps only the reference (in the
applied document). Plans, exports and errors show the reference, never the value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import Field, model_validator

from edgeplane.model.common import Input

# A digest stands for a secret in canonical forms: compared, never shown. Its key is derived
# from the control plane's secret key (``keyed``), so a stored digest says nothing without it.
_KEY: ContextVar[bytes] = ContextVar("iac_digest_key", default=b"edgeplane-iac-secret-v1")
MASK = "(secret)"


@contextmanager
def keyed(key: bytes | None) -> Iterator[None]:
    """Digests made in the block use ``key`` (``SecretBox.derive``)."""
    if key is None:
        yield
        return
    token = _KEY.set(key)
    try:
        yield
    finally:
        _KEY.reset(token)


class SecretRef(Input):
    """``{env: NAME}`` or ``{file: PATH}``; ``value`` is filled in by the client that read it."""

    env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="an environment variable"
    )
    file: str | None = Field(
        None, min_length=1, max_length=4096, description="a file, relative to the file"
    )
    value: str | None = Field(
        None, description="the resolved value (sent by the client, never stored or shown)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env (a variable's name) or file (a path)")
        return self

    def reference(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def required(self, field: str) -> str:
        """The value, or an error naming the field and the reference (not resolved)."""
        from edgeplane.errors import InvalidInput

        if self.value is None:
            raise InvalidInput.at(field, f"the secret {self.reference()} was not resolved")
        return self.value


def digest(value: str) -> str:
    """What a canonical form holds for a secret's value."""
    return "sha256:" + hmac.new(_KEY.get(), value.encode(), hashlib.sha256).hexdigest()


def canonical(ref: SecretRef | dict[str, Any] | None, field: str) -> dict[str, str] | None:
    """A secret of the file in canonical form: ``{"digest": ...}`` (the reference is not state)."""
    if ref is None:
        return None
    model = ref if isinstance(ref, SecretRef) else SecretRef.model_validate(ref)
    return {"digest": digest(model.required(field))}


def live(value: str | None) -> dict[str, str] | None:
    """A live secret (decrypted) in canonical form."""
    return None if value is None else {"digest": digest(value)}


def placeholder(*parts: str) -> dict[str, str]:
    """The reference ``export`` writes for a secret it cannot write: an environment variable
    named after the object and field (``EDGEPLANE_SECRET_CHANNELS_OPS_PASSWORD``)."""
    name = "_".join(["EDGEPLANE_SECRET", *parts]).upper()
    return {"env": "".join(c if c.isalnum() else "_" for c in name)}
