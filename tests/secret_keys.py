"""The key of every test database's secrets (``tests/conftest.py``'s ``db`` fixture); the API
fixture's home holds it as its secret.key, so that an embedded client on that home
(SecretBox.from_settings) uses the same key. A module of its own so that tests can import it
whichever ``conftest`` is first on the path."""

from __future__ import annotations

from edgeplane.secrets import SecretBox

TEST_SECRET_KEY = "edgeplane test secrets"
TEST_SECRETS = SecretBox(TEST_SECRET_KEY)
