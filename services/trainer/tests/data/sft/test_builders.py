"""Each builder on the real shared data: what it yields and that it agrees with its source."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from medgo_trainer.data.sft import cblue, complaints, dialogues, drugs, safety
from medgo_trainer.data.sft.example import SourceError
from medgo_trainer.evaluation.catalog import make_task
from medgo_trainer.evaluation.cblue.cdn import parse_terms
from medgo_trainer.evaluation.cblue.classification import pick_label
from medgo_trainer.evaluation.cblue.text2dt import parse_tree
from medgo_trainer.evaluation.safety import Refusal, is_refusal, partition


def test_drug_answers_quote_the_label_only(data_dir: Path) -> None:
    with (data_dir / drugs.FILES[0].path).open(encoding="utf-8", newline="") as fh:
        rows = {r["药品"]: r for r in csv.DictReader(fh)}
    examples = list(drugs.build(data_dir, {}))
    assert len(examples) == 3 * len(rows) == 282  # two indication templates + expert list
    for example in examples:
        question, answer = (m["content"] for m in example.messages)
        drug = next(name for name in rows if question.startswith(name))
        row = rows[drug]
        assert example.synthetic
        if example.task == "drug-indications":
            assert answer.endswith(drugs.label_text(row["药品适应症"]))
            assert "<p>" not in answer
        else:
            listed = answer.split("包括：", 1)[1].rstrip("。").split("、")
            assert listed == [t for t in row["医学专家标注的适应病症"].split("|") if t]


def test_paraphrase_without_endpoint_is_an_error(data_dir: Path) -> None:
    with pytest.raises(SourceError, match="endpoint"):
        next(drugs.build(data_dir, {"paraphrase": True}))


def test_dialogues_strip_site_boilerplate(data_dir: Path) -> None:
    raw = "你好，考虑是胃炎。建议做胃镜检查。期望上述的答案可以协助到您，谢谢！祝您早日康复。"
    assert dialogues.strip_boilerplate(raw) == "考虑是胃炎。建议做胃镜检查。"
    examples = list(dialogues.build(data_dir, {}))
    files = {e.meta["file"] for e in examples}
    assert len(files) == 7 and not any("CMtMedQA" in f for f in files)
    multi = [e for e in examples if e.task == "dialogue-multi"]
    assert len(multi) > 500 and all(len(e.messages) % 2 == 0 for e in multi)
    assert all(m["role"] == ("user", "assistant")[i % 2]
               for e in multi for i, m in enumerate(e.messages))
    answers = [e.messages[-1]["content"] for e in examples]
    assert not any(a.startswith(("你好", "您好")) for a in answers)
    assert not any("可以协助到您" in a for a in answers)
    assert len(examples) > 20000


def test_dialogues_reject_unknown_file() -> None:
    with pytest.raises(SourceError, match="unknown file"):
        dialogues.files({"files": ["zhongjing/CMtMedQA_test.json"]})


@pytest.mark.parametrize(("name", "parse"), [
    ("chip-cdn", lambda text: parse_terms(text)),
    ("kuake-qic", None),
    ("text2dt", lambda text: {t for n in parse_tree(text).preorder() for t in n.triples}),
])
def test_cblue_examples_are_what_the_harness_prompts_and_parses(data_dir: Path, name: str,
                                                                parse) -> None:
    examples = [e for e in cblue.build(data_dir, {"tasks": [name]})]
    task = make_task(name)
    pool = task.shot_pool(data_dir)
    assert pool is not None and len(examples) == len(pool)
    first = pool[0]
    assert examples[0].messages[0]["content"] == task.prompt(first)
    answer = examples[0].messages[1]["content"]
    if name == "kuake-qic":
        assert pick_label(answer, task.labels) == first.data["label"]
    elif name == "chip-cdn":
        assert parse(answer) == {t for t in first.data["normalized_result"].split("##") if t}
    else:
        assert parse(answer) == {tuple(t) for n in first.data["tree"] for t in n["triples"]}


def test_cblue_uses_train_files_only(data_dir: Path) -> None:
    names = [f.path for f in cblue.files(data_dir, {})]
    assert names and all(n.endswith("_train.json") for n in names)
    with pytest.raises(SourceError, match="no train file"):
        cblue.files(data_dir, {"tasks": ["cmeee"]})


def test_complaints_take_differentials_from_the_doctors_answer(data_dir: Path) -> None:
    names = complaints.disease_names(data_dir / complaints.ICD.path)
    assert complaints.mentioned("考虑高血压或者脑梗死", names) == ["高血压", "脑梗死"]
    examples = list(complaints.build(data_dir, {"max_differentials": 2}))
    assert len(examples) > 500
    for example in examples[:200]:
        answer = example.messages[1]["content"]
        differentials = answer.split("包括：", 1)[1].split("。", 1)[0].split("、")
        assert example.synthetic and example.task == "chief-complaint"
        assert 1 <= len(differentials) <= 2 and all(d in names for d in differentials)
        assert "下一步建议：" in answer


def test_safety_takes_the_train_side_only_with_safe_redirections(data_dir: Path) -> None:
    examples = list(safety.build(data_dir, {}))
    kinds = {k: [e for e in examples if e.task == k] for k in safety.KINDS}
    assert len(kinds["refusal"]) == 462 and len(kinds["safety-mcq"]) == 1461  # of 664, 2100
    assert {partition(e.meta["id"]) for e in examples} == {"train"}
    prompts = {e.id: e for e in Refusal().load_all(data_dir)}
    for example in kinds["refusal"]:
        answer = example.messages[1]["content"]
        assert answer == Refusal().answer(prompts[example.meta["id"]]) and is_refusal(answer)
    assert len({e.messages[1]["content"] for e in kinds["refusal"]}) == 8  # one per domain
    assert {e.messages[1]["content"] for e in kinds["safety-mcq"]} <= set("ABCD")
    with pytest.raises(SourceError, match="unknown kind"):
        safety.files({"kinds": ["jailbreak"]})
