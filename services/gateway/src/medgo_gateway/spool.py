"""A durable FIFO of items bound for the feedback service (SQLite, fsync on commit).

Every interaction record and every rating that could not be forwarded at once goes
here first, so nothing accepted is lost if the feedback service is down or the
gateway restarts. An item leaves the spool only after the feedback service has
acknowledged it; since the feedback API is idempotent (records by id, ratings by
idempotency key) a replay after a crash between delivery and acknowledgement does not
duplicate anything. `(kind, key)` is unique, so enqueueing twice is a no-op too.

The payloads are already de-identified: the spool holds no clear PHI.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    rejected TEXT,
    UNIQUE (kind, key)
);
"""


@dataclass(frozen=True)
class SpoolItem:
    seq: int
    kind: str
    key: str
    payload: dict


class Spool:
    """Thread-safe; the async code calls it through `asyncio.to_thread`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, kind: str, key: str, payload: dict) -> int:
        """Store durably (committed and fsynced on return); a duplicate is ignored.

        Returns how many items were new (0 or 1).
        """
        return self.put_many(kind, [(key, payload)])

    def put_many(self, kind: str, items: list[tuple[str, dict]]) -> int:
        """Store several items in one transaction (one fsync); returns how many were new."""
        if not items:
            return 0
        now = time.time()
        rows = [(kind, key, json.dumps(p, ensure_ascii=False), now) for key, p in items]
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO spool (kind, key, payload, created) "
                    "VALUES (?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return self._db.total_changes - before

    def head(self, limit: int) -> list[SpoolItem]:
        """The oldest pending items, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, key, payload FROM spool WHERE rejected IS NULL "
                "ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [SpoolItem(seq, kind, key, json.loads(payload)) for seq, kind, key, payload in rows]

    def ack(self, seqs: list[int]) -> None:
        """Forget delivered items."""
        with self._lock:
            self._db.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs])

    def reject(self, seq: int, reason: str) -> None:
        """Keep an item the feedback service refused as invalid, out of the queue."""
        with self._lock:
            self._db.execute(
                "UPDATE spool SET rejected = ?, attempts = attempts + 1 WHERE seq = ?",
                (reason[:500], seq),
            )

    def oldest_age(self) -> float:
        """Seconds the oldest pending item has waited (0 when none): a spool that only
        grows old, not deep, still means ratings are not reaching training."""
        with self._lock:
            (created,) = self._db.execute(
                "SELECT MIN(created) FROM spool WHERE rejected IS NULL"
            ).fetchone()
        return 0.0 if created is None else max(0.0, time.time() - created)

    def depth(self) -> int:
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM spool WHERE rejected IS NULL"
            ).fetchone()
        return count
