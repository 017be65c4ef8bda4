"""Dashboard sign-in: logins (a name and a password) and browser sessions."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from edgeplane.model.common import Input, Output, Slug
from edgeplane.model.enums import Role

PASSWORD_MIN = 10
PASSWORD_MAX = 1024


class SessionCreate(Input):
    """Sign in with an API token, or with a login's name and password."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["token"],
                    "properties": {"token": {"type": "string"}},
                    "not": {"anyOf": [{"required": ["login"]}, {"required": ["password"]}]},
                },
                {
                    "required": ["login", "password"],
                    "properties": {"login": {"type": "string"}, "password": {"type": "string"}},
                    "not": {"required": ["token"]},
                },
            ]
        }
    )

    token: SecretStr | None = Field(None, description="an API token (ep_...)")
    login: Slug | None = Field(None, description="a login's name (edgeplane user create)")
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _one_way(self) -> SessionCreate:
        if self.token is None and self.login is None:
            raise ValueError("give a token, or a login and its password")
        if self.login is not None and self.password is None:
            raise ValueError("give the login's password")
        if self.token is not None and (self.login is not None or self.password is not None):
            raise ValueError("give a token, or a login and its password, not both")
        return self


class SessionInfo(Output):
    actor: str
    login: str | None = None
    token_id: str
    roles: dict[str, Role] = Field(description="project -> role")
    platform_admin: bool
    csrf_token: str = Field(description="send it as X-CSRF-Token with every write")
    expires_at: datetime


class LoginCreate(Input):
    name: Slug
    password: SecretStr = Field(
        description=f"{PASSWORD_MIN} to {PASSWORD_MAX} characters",
        json_schema_extra={"minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX},
    )
    roles: dict[Slug, Role] = Field(
        min_length=1, description='project -> role, e.g. {"default": "viewer"}'
    )

    @field_validator("password")
    @classmethod
    def _length(cls, value: SecretStr) -> SecretStr:
        n = len(value.get_secret_value())
        if n < PASSWORD_MIN:
            raise ValueError(f"must be at least {PASSWORD_MIN} characters long")
        if n > PASSWORD_MAX:
            raise ValueError(f"must be at most {PASSWORD_MAX} characters long")
        return value


class Login(Output):
    name: str
    roles: dict[str, Role]
    token_id: str
    created_at: datetime
    created_by: str
