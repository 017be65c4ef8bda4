"""The client certificate the edge presents to a project's private origins (what a user
configures the origin with: the CA to trust and the name to expect)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from edgeplane.model.common import Output


class OriginClientCertificate(Output):
    project: str
    subject: str = Field(description="RFC 4514: CN=<project>,OU=origin client,O=Edgeplane")
    common_name: str = Field(description="the project id: what an origin checks")
    uri: str = Field(description="the subject alternative name: edgeplane:project:<project>")
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    renew_after: datetime = Field(description="renewed by the control plane after this")
    cert_pem: str = Field(description="the certificate and its issuer (no private key)")
    ca_pem: str = Field(description="the internal root CA: what the origin trusts")
