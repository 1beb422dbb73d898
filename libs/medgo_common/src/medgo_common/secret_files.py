"""Secret files readable by their owner only, from the moment they exist.

Writing a file and then `chmod 600` leaves a window in which it has the umask's mode
(often 0644) and another local user can open it and keep the descriptor. Creating it
with `os.open(..., 0o600)` closes that window (the umask can only remove bits).
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_MODE = 0o600


def write_private_file(path: Path, text: str) -> None:
    """Replace `path` with a new file holding `text`, mode 0600 from its creation.

    An existing file is removed first: `O_CREAT` would keep an older, wider mode.
    """
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
