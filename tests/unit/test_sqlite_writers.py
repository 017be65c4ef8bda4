"""SQLite writers of one process queue for their turn (``Database._writer``) instead of
racing for SQLite's lock: a write that arrives while others keep writing gets its turn soon."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from edgeplane.store.db import Database


def test_a_write_gets_its_turn_under_a_stream_of_writes(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.writing() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
    stop = threading.Event()

    def stream(who: str) -> None:  # a writer that holds the lock a few ms at a time, forever
        while not stop.is_set():
            with db.writing() as conn:
                conn.execute(text("INSERT INTO t (who) VALUES (:w)"), {"w": who})
                time.sleep(0.005)

    streams = [threading.Thread(target=stream, args=(f"s{i}",)) for i in range(4)]
    for thread in streams:
        thread.start()
    waits: list[float] = []
    try:
        time.sleep(0.2)
        for _ in range(20):
            began = time.monotonic()
            with db.writing() as conn:
                conn.execute(text("INSERT INTO t (who) VALUES ('late')"))
            waits.append(time.monotonic() - began)
    finally:
        stop.set()
        for thread in streams:
            thread.join()
        db.dispose()
    # In turn: at most the 4 streams' few ms each ahead of it. Racing SQLite's polling busy
    # handler instead, a late writer waits up to its whole busy timeout.
    assert max(waits) < 0.5, sorted(waits)[-5:]

