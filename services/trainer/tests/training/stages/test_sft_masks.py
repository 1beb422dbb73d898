"""SFT trains on the answers only, and packed dialogues do not see each other."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from medgo_trainer.training.recipe import RecipeError, recipe_from_dict, validate
from medgo_trainer.training.stages.base import build_sft_trainer
from medgo_trainer.training.stages.chat import CHATML_TRAINING, training_template

SYSTEM, QUESTION, ANSWER = "你是医生助手。", "高血压怎么办？", "规律服药，低盐饮食。"
DIALOGUES = [
    {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION},
                  {"role": "assistant", "content": ANSWER},
                  {"role": "user", "content": "要复查吗？"},
                  {"role": "assistant", "content": "定期复查血压。"}]},
    {"messages": [{"role": "user", "content": "感冒发热怎么办？"},
                  {"role": "assistant", "content": "多饮水休息。"}]},
] * 2


def _sft(micro_policy, tmp_path: Path, **trl) -> object:
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in DIALOGUES),
                    encoding="utf-8")
    recipe = recipe_from_dict({
        "stage": "sft", "base": str(micro_policy.base),
        "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "data": {"train": [str(data)]},
        "trl": {"use_cpu": True, "bf16": False, "max_steps": 1, "max_length": 128,
                "per_device_train_batch_size": 4, "report_to": "none", "save_strategy": "no",
                "disable_tqdm": True, "gradient_checkpointing": False, **trl},
    })
    validate(recipe)
    return build_sft_trainer(recipe, tmp_path / "out", progress=False)


def test_only_assistant_tokens_carry_loss(micro_policy, tmp_path):
    trainer = _sft(micro_policy, tmp_path, assistant_only_loss=True)
    tokenizer = trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))
    seen = set()
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        trained = tokenizer.decode(ids[labels != -100])
        ignored = tokenizer.decode(ids[labels == -100])
        seen.add(trained)
        assert SYSTEM not in trained and QUESTION not in trained and "user" not in trained
        assert trained.count("<|im_end|>") == trained.count("。")  # each answer, and its end
    assert seen == {f"{ANSWER}<|im_end|>定期复查血压。<|im_end|>", "多饮水休息。<|im_end|>"}
    assert SYSTEM in ignored or "感冒" in ignored
    assert "{% generation %}" not in tokenizer.chat_template  # the served template is kept


def test_the_training_template_renders_what_serving_renders(micro_policy):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_policy.base)
    served = tokenizer.apply_chat_template(DIALOGUES[0]["messages"], tokenize=False)
    with training_template(tokenizer, enabled=True):
        assert tokenizer.chat_template == CHATML_TRAINING
        trained = tokenizer.apply_chat_template(DIALOGUES[0]["messages"], tokenize=False)
    assert trained == served
    tokenizer.chat_template = "{{ messages[0]['content'] }}"  # not ChatML, no markers
    with pytest.raises(RecipeError, match="generation"), training_template(tokenizer,
                                                                          enabled=True):
        pass


def test_packed_dialogues_do_not_attend_to_each_other(micro_policy, tmp_path):
    trainer = _sft(micro_policy, tmp_path, packing=True, packing_strategy="bfd")
    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" not in batch or batch["input_ids"].shape[0] == 1  # padding-free
    ids, positions = batch["input_ids"], batch["position_ids"]
    starts = [i for i, p in enumerate(positions[0].tolist()) if p == 0] + [ids.shape[1]]
    assert len(starts) > 2  # several dialogues in one row
    model = trainer.model.eval()
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=positions).logits[0]
        for begin, end in itertools.pairwise(starts):
            alone = model(input_ids=ids[:, begin:end]).logits[0]
            torch.testing.assert_close(packed[begin:end], alone, atol=1e-4, rtol=1e-4)
