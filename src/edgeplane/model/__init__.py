"""Canonical pydantic models of the desired state and their validation."""
