"""Default locations shared by the services' settings classes.

Only the *defaults* live here; every service reads its own `MEDGO_*` variables in its
settings.py. Local mode keeps models, databases and spools under `<repo>/var`, and
reads the bundled public data from `../shared/data` beside the checkout.
"""

from __future__ import annotations

from pathlib import Path


def repo_root(start: Path | None = None) -> Path:
    """The checkout holding `services/`, found upwards from `start` (default: cwd)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "services").is_dir() and (candidate / "libs" / "medgo_common").is_dir():
            return candidate
    return here


def default_var_dir() -> Path:
    """Where local mode keeps state: models, SQLite, spools, job logs."""
    return repo_root() / "var"


def default_data_dir() -> Path:
    """The bundled public data (../shared/data beside the checkout)."""
    return repo_root().parent / "shared" / "data"


def default_model_dir() -> Path:
    """Where the trainer writes medgo-tiny and the checkpoints it registers."""
    return default_var_dir() / "models"
