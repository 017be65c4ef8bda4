"""The control plane inside this process: the same API over a local database, no token."""

from __future__ import annotations

import threading

from fastapi import FastAPI

from edgeplane.api.app import create_app
from edgeplane.secrets import SecretBox
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from edgeplane.store.migrate import upgrade

_apps: dict[str, FastAPI] = {}
_lock = threading.Lock()


def embedded_app(settings: Settings) -> FastAPI:
    """One app per database URL and process, migrated to the newest schema on first use."""
    url = settings.effective_database_url
    with _lock:
        app = _apps.get(url)
        if app is None:
            db = Database(url, secrets=SecretBox.from_settings(settings))
            upgrade(db.engine)
            app = create_app(settings, db, local_actor=LOCAL)
            _apps[url] = app
        return app


def close_all() -> None:
    with _lock:
        for app in _apps.values():
            app.state.db.dispose()
        _apps.clear()
