"""medgo-tiny's tokenizer, trained here on a slice of the bundled corpus."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest
from medgo_trainer.data.corpus import dialogue_text, read_dialogues
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.tokenizer import (
    CHATML_TEMPLATE,
    SPECIAL_TOKENS,
    compression_ratio,
    save_tokenizer,
    train_tokenizer,
)
from transformers import AutoTokenizer

MEDICAL = (
    "患者女，45岁，主诉头痛3天，伴恶心。既往高血压病史5年，服用氨氯地平5mg qd。\n"
    "建议：查血压、头颅CT。"
)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    dialogues = islice(read_dialogues(TrainerSettings().data_dir), 3000)
    return [dialogue_text(d) for d in dialogues]


@pytest.fixture(scope="module")
def tokenizer_dir(texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained, saved and reloaded the way vLLM and the stages load it."""
    tokenizer = train_tokenizer(texts[:2500], vocab_size=4096)
    return save_tokenizer(tokenizer, tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def test_round_trip_on_chinese_medical_text(tokenizer) -> None:
    ids = tokenizer(MEDICAL, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == MEDICAL
    assert tokenizer.unk_token_id is None  # byte-level: nothing is ever unknown
    rare = "罕见字：龘靐齉"
    assert tokenizer.decode(tokenizer(rare, add_special_tokens=False)["input_ids"]) == rare


def test_chinese_words_become_single_tokens(tokenizer, texts: list[str]) -> None:
    pieces = [tokenizer.decode([i]) for i in tokenizer("高血压患者", add_special_tokens=False)[
        "input_ids"]]
    assert any(len(p) >= 2 for p in pieces), pieces
    # Held-out text: a UTF-8 byte-level model without Chinese merges would be < 1 char/token.
    assert compression_ratio(tokenizer, texts[2500:]) > 1.3


def test_special_tokens_are_single_ids(tokenizer) -> None:
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in SPECIAL_TOKENS]
    assert all(len(i) == 1 for i in ids), ids
    assert len({i[0] for i in ids}) == 3
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer("<|im_start|>user", add_special_tokens=False)["input_ids"][0] == ids[1][0]


def test_chat_template_renders_chatml_with_generation_prompt(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "你是医生。"},
        {"role": "user", "content": "头痛怎么办？"},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\n你是医生。<|im_end|>\n"
        "<|im_start|>user\n头痛怎么办？<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert tokenizer.chat_template == CHATML_TEMPLATE
    without = tokenizer.apply_chat_template(messages, tokenize=False)
    assert not without.endswith("<|im_start|>assistant\n")
