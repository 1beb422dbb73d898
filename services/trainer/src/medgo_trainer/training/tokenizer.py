"""medgo-tiny's tokenizer: byte-level BPE trained on the Chinese medical corpus, with
Qwen2's pre-tokenisation, special tokens and ChatML chat template.

Qwen2-72B uses a 151k-entry byte-level BPE; a 5 M-parameter model cannot afford that
embedding table, so medgo-tiny learns its own ~8k vocabulary the same way. Qwen2's split
pattern keeps a run of Chinese characters together (`\\p{L}+`), so BPE merges frequent
characters *and* words (症状, 高血压) into single tokens - the point of training on
Chinese text (compression is reported by `compression_ratio`). Being byte-level, it
never produces an unknown token. Saved as a standard `tokenizer.json` directory that
transformers (`AutoTokenizer`) and vLLM load as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

#: Qwen2's pre-tokenizer split: English contractions, letter runs (a whole run of CJK
#: characters), single digits, punctuation runs, newlines, other whitespace.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: Qwen2's ChatML template (system prompt optional): what vLLM's chat endpoint renders.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192) -> Any:
    """Train the BPE on `texts`; returns a `PreTrainedTokenizerFast` with ChatML."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=IM_END,  # a chat turn ends generation, as in Qwen2-Instruct
        pad_token=ENDOFTEXT,
        additional_special_tokens=[IM_START],
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def save_tokenizer(tokenizer: Any, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def compression_ratio(tokenizer: Any, texts: Iterable[str]) -> float:
    """Characters per token on `texts` (a char-level tokenizer scores 1.0)."""
    chars = tokens = 0
    for text in texts:
        chars += len(text)
        tokens += len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return chars / max(tokens, 1)
