"""`medgo-train purge`: the retention purge of the feedback store and of the loop's exports.

Each loop run leaves the DPO export it trained on — clinicians' conversations — at
`<model_dir>/checkpoints/<id>/dpo.jsonl` (`EXPORT_COPY`). The feedback store owns the
policy for every copy of its data (`MEDGO_FEEDBACK_EXPORT_COPY_RETENTION_DAYS`); the
trainer owns the model volume. So one command does both, in this order:

1. the store: `POST /v1/retention/purge` until nothing is due (each call deletes in
   short transactions for up to 20 s, then reports; its answer carries the export
   copies' cutoff), or, with `--dry-run`, `GET /v1/retention`;
2. the copies: every `checkpoints/<id>/dpo.jsonl` written (modified) before that
   cutoff is removed, or listed with `--dry-run`.

It never deletes outside `<model_dir>/checkpoints` (itself not followed if a link): each
checkpoint directory is opened without following links (`O_NOFOLLOW`) and the copy is
checked and unlinked relative to that open directory, so a symbolic link — a checkpoint
directory or an export planted as a link to somewhere else — is refused (listed, exit
status 2 once the rest is done) instead of followed, even if it is swapped in while the
purge runs. What the copy's run left besides it (the adapter, its reports,
`recipe.resolved.yaml` naming the export's old path, the registry's data hash) stays.
A second run finds nothing to do.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from medgo_common.schemas.feedback import RetentionReport
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.loop.options import LoopError

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"  # <model_dir>/checkpoints/<id>/: one loop run each
EXPORT_COPY = "dpo.jsonl"  # the export a run trained on (`run_loop`)
PURGE_TIMEOUT_S = 300.0  # one call deletes for ~20 s (feedback's CALL_BUDGET_S), then reports


@dataclass(frozen=True)
class ExportCopy:
    path: Path
    modified: datetime
    size: int


@dataclass
class CopyScan:
    """The export copies under the checkpoints directory, and what was not looked into."""

    copies: list[ExportCopy] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "<path>: <why>"


def checkpoints_dir(settings: TrainerSettings) -> Path:
    return settings.model_dir / CHECKPOINTS


@contextmanager
def _open_dir(path: Path) -> Iterator[int]:
    """A directory opened without following a link in its last component."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        yield fd
    finally:
        os.close(fd)


def _copy_in(fd: int, directory: Path, scan: CopyScan) -> ExportCopy | None:
    """The export copy of one open checkpoint directory, if it holds a plain one."""
    try:
        info = os.stat(EXPORT_COPY, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    path = directory / EXPORT_COPY
    if not stat.S_ISREG(info.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        scan.refused.append(f"{path}: {what}, not removed")
        return None
    return ExportCopy(path, datetime.fromtimestamp(info.st_mtime, UTC), info.st_size)


def scan_export_copies(root: Path) -> CopyScan:
    """Every `<root>/<id>/dpo.jsonl`, oldest first; links are listed as refused."""
    scan = CopyScan()
    if root.is_symlink():  # the model directory may be a link (ops' choice), this not
        scan.refused.append(f"{root}: a symbolic link, not followed")
        return scan
    if not root.is_dir():
        return scan
    root = root.parent.resolve() / root.name
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_symlink():
                scan.refused.append(f"{entry.path}: a symbolic link, not followed")
            elif entry.is_dir(follow_symlinks=False):
                try:
                    with _open_dir(Path(entry.path)) as fd:
                        copy = _copy_in(fd, Path(entry.path), scan)
                except OSError as exc:  # ELOOP: it became a link since the listing
                    scan.refused.append(f"{entry.path}: {exc.strerror}, not followed")
                    continue
                if copy is not None:
                    scan.copies.append(copy)
    scan.copies.sort(key=lambda c: c.modified)
    return scan


def oldest_export_copy(root: Path) -> datetime | None:
    """When the oldest export copy still on the model volume was written (None: none)."""
    copies = scan_export_copies(root).copies
    return copies[0].modified if copies else None


def _remove(copy: ExportCopy, scan: CopyScan) -> bool:
    """Unlink the copy relative to its directory opened without following links."""
    try:
        with _open_dir(copy.path.parent) as fd:
            if _copy_in(fd, copy.path.parent, scan) is None:
                return False  # replaced by a link (refused) or gone since the scan
            os.unlink(EXPORT_COPY, dir_fd=fd)
    except FileNotFoundError:
        return False
    except OSError as exc:  # e.g. ELOOP: the directory became a link since the scan
        scan.refused.append(f"{copy.path.parent}: {exc.strerror}, not removed")
        return False
    return True


def purge_export_copies(root: Path, cutoff: datetime, *, dry_run: bool) -> dict[str, Any]:
    """Remove (or, dry, list) the copies written before `cutoff`; a summary dict."""
    scan = scan_export_copies(root)
    due = [c for c in scan.copies if c.modified < cutoff]
    removed: list[ExportCopy] = []
    for n, copy in enumerate(due, 1):
        if dry_run:
            log.info("purge: would remove %s (written %s)", copy.path,
                     copy.modified.isoformat(timespec="seconds"))
            removed.append(copy)
        elif _remove(copy, scan):
            log.info("purge: [%d/%d] removed %s (written %s)", n, len(due), copy.path,
                     copy.modified.isoformat(timespec="seconds"))
            removed.append(copy)
    kept = [c for c in scan.copies if c.modified >= cutoff]
    return {"directory": str(root), "cutoff": cutoff.isoformat(),
            "would_remove" if dry_run else "removed": [str(c.path) for c in removed],
            "bytes": sum(c.size for c in removed), "kept": len(kept),
            "oldest_kept": kept[0].modified.isoformat() if kept else None,
            "refused": scan.refused}


def _feedback(settings: TrainerSettings, method: str, path: str) -> RetentionReport:
    url = f"{settings.feedback_url.rstrip('/')}{path}"
    headers = {"Authorization": f"Bearer {settings.feedback_token}"}
    try:
        response = httpx.request(method, url, headers=headers, timeout=PURGE_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise LoopError(f"cannot reach the feedback service at {url} ({exc}); nothing was "
                        "purged (check MEDGO_TRAINER_FEEDBACK_URL)") from exc
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise LoopError(f"feedback refused {method} {path} ({response.status_code}): "
                        f"{message}")
    return RetentionReport.model_validate(response.json())


def purge_store(settings: TrainerSettings, *, dry_run: bool) -> RetentionReport:
    """The feedback store's purge through its API, batch by batch, with progress."""
    if dry_run:
        plan = _feedback(settings, "GET", "/v1/retention")
        log.info("purge: feedback would delete %d interactions and %d ratings created "
                 "before %s", plan.due.interactions, plan.due.ratings,
                 plan.cutoff.isoformat(timespec="seconds"))
        return plan
    interactions = ratings = 0
    while True:
        result = _feedback(settings, "POST", "/v1/retention/purge")
        interactions += result.purged.interactions
        ratings += result.purged.ratings
        log.info("purge: feedback deleted %d interactions and %d ratings so far, %d due",
                 interactions, ratings, result.due.interactions)
        if not result.purged.interactions or not result.due.interactions:
            break
    return result.model_copy(update={"purged": result.purged.model_copy(
        update={"interactions": interactions, "ratings": ratings})})


def purge(settings: TrainerSettings, *, dry_run: bool) -> dict[str, Any]:
    """Both purges (module docstring); `LoopError` if anything was refused."""
    store = purge_store(settings, dry_run=dry_run)
    copies = purge_export_copies(checkpoints_dir(settings), store.export_copy_cutoff,
                                 dry_run=dry_run)
    summary = {"dry_run": dry_run,
               "feedback": store.model_dump(mode="json"), "export_copies": copies}
    gone = len(copies["would_remove" if dry_run else "removed"])
    log.info("purge: %s %d interactions, %d ratings and %d export copies (%.1f MB) past "
             "their retention; %d copies kept", "would delete" if dry_run else "deleted",
             store.due.interactions if dry_run else store.purged.interactions,
             store.due.ratings if dry_run else store.purged.ratings, gone,
             copies["bytes"] / 1e6, copies["kept"])
    if copies["refused"]:
        raise LoopError("refused to remove, look at them: " + "; ".join(copies["refused"]))
    return summary
