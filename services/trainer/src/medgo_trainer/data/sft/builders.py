"""The source names a mixture recipe may use, each bound to its builder module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from medgo_trainer.data.sft import (
    cblue,
    complaints,
    dialogues,
    drugs,
    guidelines,
    safety,
)
from medgo_trainer.data.sft.example import SftExample
from medgo_trainer.data.sft.sourcefiles import SourceFile, check_file


@dataclass(frozen=True)
class Builder:
    """``files`` lists the inputs (checked before any build); ``check`` may replace the
    generic file check for inputs that are not data files (the review queue)."""

    name: str
    options: frozenset[str]
    files: Callable[[Path, dict], tuple[SourceFile, ...]]
    build: Callable[[Path, dict], Iterator[SftExample]]
    check: Callable[[Path, dict], list[Path]] | None = None

    def validate(self, data_dir: Path, options: dict) -> list[Path]:
        """The input files once each is proven usable; raises SourceError otherwise."""
        if self.check is not None:
            return self.check(data_dir, options)
        return [check_file(self.name, f, data_dir) for f in self.files(data_dir, options)]


BUILDERS: dict[str, Builder] = {
    b.name: b
    for b in (
        Builder(drugs.NAME, drugs.OPTIONS, lambda d, o: drugs.FILES, drugs.build),
        Builder(dialogues.NAME, dialogues.OPTIONS, lambda d, o: dialogues.files(o),
                dialogues.build),
        Builder(cblue.NAME, cblue.OPTIONS, cblue.files, cblue.build),
        Builder(complaints.NAME, complaints.OPTIONS, lambda d, o: complaints.FILES,
                complaints.build),
        Builder(guidelines.NAME, guidelines.OPTIONS, lambda d, o: (), guidelines.build,
                guidelines.check),
        Builder(safety.NAME, safety.OPTIONS, lambda d, o: safety.files(o), safety.build),
    )
}
