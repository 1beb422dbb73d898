"""The local engine's per-document functions as datatrove pipeline blocks.

Each block wraps what `pipeline.prepare_corpus` runs (`read_documents`,
`clean_and_scrub`, `count_tokens`, `shard_line`), so both engines read, clean, redact,
count and write alike; nothing is re-implemented. On a cluster there is no parent
process that sees every document, so what a block removes is recorded in datatrove's
per-task stats (`stat_update`); scaleout.py adds those up into the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.readers.base import BaseReader
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.utils.word_tokenizers import WhitespaceTokenizer
from medgo_trainer.data.prepare.clean import CleanConfig, count_tokens, read_documents
from medgo_trainer.data.prepare.pipeline import clean_and_scrub, shard_line

#: Metadata key of the task that read a document: the exact de-dup keeps the copy of the
#: lowest task, i.e. the first in corpus order (see `CorpusReader`).
TASK_KEY = "task"


class ChineseCharTokenizer(WhitespaceTokenizer):
    """One word per character, so datatrove's MinHash n-grams are character 5-grams.

    datatrove's `MinhashDedupSignature` shingles *words* from its word tokenizer, which for
    Chinese is spaCy with jieba. Characters need neither and are what `prepare/dedup.py`
    shingles, so both engines see the same similarity. Sentences keep the parent's
    punctuation-regex splitter (。！？ included), which needs no spaCy either.
    """

    def word_tokenize(self, text: str) -> list[str]:
        return [ch for ch in text if not ch.isspace()]


class _CountingStep(PipelineStep):
    type = "🩺 - MEDGO"

    def count(self, label: str, tokens: int) -> None:
        """One document and its tokens under `label`, for the report (`<label>_tokens`)."""
        self.stat_update(label)
        self.stat_update(f"{label}_tokens", value=tokens)


class CorpusReader(BaseReader):
    """Corpus files read with `clean.read_documents`, a contiguous slice of them per task.

    Contiguous slices keep task order = corpus order, so the de-dup stages, which keep the
    copy of the lowest (task, index), keep the same copy as the local engine. The files
    must be visible at the same path to every task (shared storage on a cluster).
    """

    name = "📚 MedGo corpus"

    def __init__(self, files: Sequence[Path]) -> None:
        super().__init__()
        self.files = [Path(f).resolve() for f in files]

    def run(self, data: DocumentsPipeline = None, rank: int = 0,
            world_size: int = 1) -> DocumentsPipeline:
        n = len(self.files)
        for path in self.files[rank * n // world_size: (rank + 1) * n // world_size]:
            self.stat_update("input_bytes", value=path.stat().st_size, unit="input_file")
            for doc in read_documents(path):
                # Built directly, not through the adapter, which would skip empty texts
                # the local engine counts (and drops as too short).
                document = Document(text=doc.text, id=doc.id,
                                    metadata={"source": doc.source, TASK_KEY: rank})
                self.update_doc_stats(document)
                yield document


class CleanScrubStep(_CountingStep):
    """`clean_and_scrub` per document: NFKC, boilerplate, length, language, PHI redaction.

    Stats: `input`, one label per filter that dropped documents (`boilerplate`, `length`,
    `language`, `deid_error`) and `forwarded`, each with its `_tokens`. The PHI
    replacements travel in the document's metadata and are counted only for the documents
    that survive de-dup, as the local engine does.
    """

    name = "🧹 clean + PHI scrub"

    def __init__(self, config: CleanConfig) -> None:
        super().__init__()
        self.config = config

    def run(self, data: DocumentsPipeline, rank: int = 0,
            world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            with self.track_time():
                result = clean_and_scrub(doc.text, self.config)
            self.count("input", result.raw_tokens)
            if result.text is None:
                self.count(result.dropped_by, result.raw_tokens)
                continue
            doc.text = result.text
            doc.metadata["phi"] = dict(result.phi)
            self.count("forwarded", count_tokens(doc.text))
            yield doc


class Tally(_CountingStep):
    """Documents, tokens and PHI replacements that got this far (`passed`, `phi_<type>`)."""

    def __init__(self, label: str) -> None:
        self.name = f"🧮 tally {label}"  # before super().__init__(), which names the stats
        super().__init__()

    def run(self, data: DocumentsPipeline, rank: int = 0,
            world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            self.count("passed", count_tokens(doc.text))
            for kind, n in doc.metadata.get("phi", {}).items():
                self.stat_update(f"phi_{kind}", value=n)
            yield doc


class ShardWriter(JsonlWriter):
    """`part-<task>.jsonl` holding exactly the local engine's lines (`shard_line`)."""

    name = "🐿 MedGo shards"

    def __init__(self, output_folder: str) -> None:
        super().__init__(output_folder, output_filename="part-${rank}.jsonl", compression=None)

    def _default_adapter(self, document: Document) -> dict:
        return {"id": document.id, "text": document.text, "source": document.metadata["source"]}

    def _write(self, document: dict, file_handler: IO, _filename: str) -> None:
        line = shard_line(document["id"], document["text"], document["source"])
        file_handler.write(line.encode("utf-8") + b"\n")
