"""Mixture validation: every bad recipe or source fails with a clear error, writing nothing."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from medgo_trainer.cli import main
from medgo_trainer.data.sft.build import build_mixture
from medgo_trainer.data.sft.example import SourceError
from medgo_trainer.data.sft.mixture import DEFAULT_MIXTURE, load_mixture, validate_sources

DRUGS_CSV = "corpus/qizhengpt/drug_indication_eval.csv"


def test_default_mixture_is_valid_against_the_shared_data(data_dir: Path) -> None:
    mixture = load_mixture(DEFAULT_MIXTURE)
    files = validate_sources(mixture, data_dir)
    assert set(files) == {"dialogues", "drugs", "complaints", "cblue", "safety"}
    assert all(p.is_file() for paths in files.values() for p in paths)


@pytest.mark.parametrize(("source", "message"), [
    ({"name": "pubmed"}, "unknown source name"),
    ({"name": "drugs", "weight": 0}, "weight must be a number > 0"),
    ({"name": "drugs", "weight": -1.5}, "weight must be a number > 0"),
    ({"name": "drugs", "weight": "lots"}, "weight must be a number > 0"),
    ({"name": "drugs", "max_examples": 0}, "max_examples must be a whole number"),
    ({"name": "drugs", "wieght": 2}, r"unknown key\(s\) \['wieght'\]"),
    ({"name": "drugs", "options": {"paraphrase_model": "x"}}, "unknown key"),
])
def test_bad_recipe_is_rejected(write_mixture: Callable[[dict], Path], source: dict,
                                message: str) -> None:
    with pytest.raises(SourceError, match=message):
        load_mixture(write_mixture({"sources": [source]}))


def test_duplicate_source_and_empty_list_are_rejected(
        write_mixture: Callable[[dict], Path]) -> None:
    with pytest.raises(SourceError, match="listed twice"):
        load_mixture(write_mixture({"sources": [{"name": "drugs"}, {"name": "drugs"}]}))
    with pytest.raises(SourceError, match="non-empty list"):
        load_mixture(write_mixture({"sources": []}))


def test_overrides_address_sources_by_name(write_mixture: Callable[[dict], Path]) -> None:
    path = write_mixture({"seed": 1, "sources": [{"name": "drugs"},
                                                 {"name": "cblue", "max_examples": 100}]})
    mixture = load_mixture(path, ["seed=9", "sources.cblue.max_examples=5",
                                  "sources.drugs.weight=1.5", "leakage.threshold=0.7",
                                  "sources.cblue.options.tasks=[kuake-qic]"])
    assert mixture.seed == 9 and mixture.leakage.threshold == 0.7
    assert mixture.sources[0].weight == 1.5 and mixture.sources[1].max_examples == 5
    assert mixture.sources[1].options == {"tasks": ["kuake-qic"]}
    replaced = load_mixture(path, ["sources=[{name: safety, max_examples: 3}]"])
    assert [(s.name, s.max_examples) for s in replaced.sources] == [("safety", 3)]


@pytest.mark.parametrize(("override", "message"), [
    ("sources.pubmed.weight=2", "the mixture has no source 'pubmed'"),
    ("sources.drugs.weight=0", "weight must be a number > 0"),
    ("sources.drugs.wieght=2", r"unknown key\(s\) \['wieght'\]"),
    ("leakage.threshold=2", r"leakage.threshold must be a number in \(0, 1\]"),
    ("leakage.template_df=0", "leakage.template_df must be a whole number"),
    ("seed", "must look like key.sub=value"),
])
def test_bad_override_is_rejected(write_mixture: Callable[[dict], Path], override: str,
                                  message: str) -> None:
    with pytest.raises(SourceError, match=message):
        load_mixture(write_mixture({"sources": [{"name": "drugs"}]}), [override])


@pytest.fixture
def broken_data(tmp_path: Path, data_dir: Path) -> Path:
    """A data folder whose drug-label file we can break (the MANIFEST is copied too)."""
    root = tmp_path / "data"
    (root / DRUGS_CSV).parent.mkdir(parents=True)
    shutil.copy(data_dir / "MANIFEST.md", root / "MANIFEST.md")
    return root


@pytest.mark.parametrize(("content", "message"), [
    ("", "is empty"),
    ("药品,药品适应症\n", "is empty"),
    ('{"drug": "x"}\n', r"lack field\(s\) \['药品', '药品适应症'\]"),
])
def test_bad_source_file_fails_before_anything_is_written(
        broken_data: Path, tmp_path: Path, write_mixture: Callable[[dict], Path],
        content: str, message: str) -> None:
    (broken_data / DRUGS_CSV).write_text(content, encoding="utf-8")
    mixture = load_mixture(write_mixture({"sources": [{"name": "drugs"}]}))
    out = tmp_path / "out"
    with pytest.raises(SourceError, match=message):
        build_mixture(mixture, broken_data, out)
    assert not out.exists()


def test_missing_file_and_bad_json_are_clear(broken_data: Path, tmp_path: Path,
                                             write_mixture: Callable[[dict], Path]) -> None:
    mixture = load_mixture(write_mixture({"sources": [{"name": "cblue",
                                                       "options": {"tasks": ["chip-sts"]}}]}))
    with pytest.raises(SourceError, match=r"CHIP-STS_train\.json does not exist"):
        validate_sources(mixture, broken_data)
    bad = broken_data / "cblue/CHIP-STS/CHIP-STS_train.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('[{"id": 1, "text1": "a",\n', encoding="utf-8")
    with pytest.raises(SourceError, match="is not valid json"):
        validate_sources(mixture, broken_data)


def test_cli_prints_one_line_and_exits_2(broken_data: Path, tmp_path: Path,
                                         write_mixture: Callable[[dict], Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write_mixture({"sources": [{"name": "drugs", "weight": 0}]})
    out = tmp_path / "out"
    code = main(["build-sft", "--mixture", str(recipe), "--out", str(out),
                 "--data-dir", str(broken_data)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "weight must be a number > 0" in err
    assert not out.exists()


def test_cli_takes_a_packaged_recipe_name_and_overrides(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["build-sft", "--recipe", "sft-mixture-default", "--set",
                 "sources.complaints.weight=-1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "sources[2] (complaints): weight must be a number > 0" in err
    assert not out.exists()
