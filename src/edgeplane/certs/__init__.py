"""Certificates: the internal CA (and, later, ACME issuance)."""
