"""The review queue for model-generated QA pairs, and the reviewer's loop.

Candidates live in one SQLite file (stdlib `sqlite3`: the queue travels with the
data, e.g. to the physicians' machine in the hospital, and needs no server). A pair
enters a mixture only with status ``approved`` (an ``edit`` approves the corrected
text); each decision records who made it and when, and a pair is decided once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from medgo_trainer.data.sft.example import SourceError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS candidates (
    id TEXT PRIMARY KEY,
    passage TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'rejected')),
    edited INTEGER NOT NULL DEFAULT 0,
    reviewer TEXT,
    reviewed_at TEXT
)
"""


@dataclass(frozen=True)
class Candidate:
    id: str
    passage: str
    question: str
    answer: str
    model: str
    status: str = "pending"


class ReviewQueue:
    """Open (creating if asked) the queue at ``path``; every call is one transaction."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        if not create and not path.is_file():
            raise SourceError(f"review queue {path} does not exist (generate candidates first)")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            with closing(self._connect()) as db, db:
                db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"review queue {path} is not a usable SQLite file: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(self.path)
        except sqlite3.Error as exc:
            raise SourceError(f"review queue {self.path} cannot be opened: {exc}") from exc

    def add(self, candidates: list[Candidate]) -> int:
        """Store new candidates; an id already queued (same passage and pair) is kept."""
        with closing(self._connect()) as db, db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO candidates (id, passage, question, answer, model) "
                "VALUES (?, ?, ?, ?, ?)",
                [(c.id, c.passage, c.question, c.answer, c.model) for c in candidates])
            return db.total_changes - before

    def _select(self, status: str) -> list[Candidate]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, passage, question, answer, model, status "
                              "FROM candidates WHERE status = ? ORDER BY rowid", (status,))
            return [Candidate(*row) for row in rows]

    def pending(self) -> list[Candidate]:
        return self._select("pending")

    def approved(self) -> list[Candidate]:
        return self._select("approved")

    def decide(self, candidate_id: str, verdict: str, reviewer: str, *,
               question: str | None = None, answer: str | None = None) -> None:
        """Record ``approve``, ``reject`` or ``edit`` (edit approves the new text)."""
        status = {"approve": "approved", "reject": "rejected", "edit": "approved"}[verdict]
        now = datetime.now(UTC).isoformat()
        with closing(self._connect()) as db, db:
            updated = db.execute(
                "UPDATE candidates SET status = ?, edited = ?, reviewer = ?, reviewed_at = ?, "
                "question = COALESCE(?, question), answer = COALESCE(?, answer) "
                "WHERE id = ? AND status = 'pending'",
                (status, int(verdict == "edit"), reviewer, now, question, answer, candidate_id))
            if updated.rowcount != 1:
                raise SourceError(f"candidate {candidate_id} is not pending in {self.path}")

    def counts(self) -> dict[str, int]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT status, COUNT(*) FROM candidates GROUP BY status")
            return dict(rows.fetchall())


PROMPT = "[a]pprove / [r]eject / [e]dit / [s]kip / [q]uit > "


def _ask(lines: Iterator[str], out: TextIO, prompt: str) -> str | None:
    out.write(prompt)
    out.flush()
    return next(lines, None)


def review(queue: ReviewQueue, reviewer: str, stdin: TextIO, out: TextIO) -> dict[str, int]:
    """Show each pending pair and record the reviewer's decision; returns the tally.

    Edit asks for the corrected question and answer (an empty line keeps the old one).
    End of input or ``q`` stops, leaving the rest pending.
    """
    lines = (line.rstrip("\n") for line in stdin)
    tally = {"approve": 0, "reject": 0, "edit": 0, "skip": 0}
    for candidate in queue.pending():
        out.write(f"\n=== {candidate.id} ({candidate.model})\n段落：{candidate.passage}\n"
                  f"问题：{candidate.question}\n答案：{candidate.answer}\n")
        choice = _ask(lines, out, PROMPT)
        while choice is not None and choice.strip().lower() not in ("a", "r", "e", "s", "q"):
            choice = _ask(lines, out, PROMPT)
        if choice is None or choice.strip().lower() == "q":
            break
        verdict = {"a": "approve", "r": "reject", "e": "edit", "s": "skip"}[choice.strip().lower()]
        if verdict == "skip":
            tally["skip"] += 1
            continue
        question = answer = None
        if verdict == "edit":
            question = (_ask(lines, out, "新问题（回车保留）> ") or "").strip() or None
            answer = (_ask(lines, out, "新答案（回车保留）> ") or "").strip() or None
        queue.decide(candidate.id, verdict, reviewer, question=question, answer=answer)
        tally[verdict] += 1
    return tally
