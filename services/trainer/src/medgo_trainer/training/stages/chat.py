"""Assistant-only loss for chat SFT: a ChatML template that marks what the model says.

TRL's `assistant_only_loss` trains only on tokens inside the chat template's
`{% generation %}` blocks. medgo-tiny's template (and Qwen2's ChatML) has none, and TRL
patches only the templates it knows. `training_template` installs, for the trainer's
construction only (that is when TRL tokenises), a ChatML template with the assistant's
content and its `<|im_end|>` inside the markers — after checking that it renders
exactly what the model's own template renders, with and without a system turn, so the
model trains on the very text vLLM will feed it. The saved tokenizer keeps the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from medgo_trainer.training.recipe import RecipeError

CHATML_TRAINING = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_PROBES = (
    [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
     {"role": "assistant", "content": "a"}, {"role": "user", "content": "v"},
     {"role": "assistant", "content": "b"}],
    [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}],
)


def _render(tokenizer: Any, template: str | None, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)


def _trl_patches(get_training_chat_template: Any, tokenizer: Any) -> bool:
    """Whether TRL knows this template (Qwen2's, ...) and patches it itself."""
    try:
        get_training_chat_template(tokenizer)
    except ValueError:
        return False
    return True


@contextmanager
def training_template(tokenizer: Any, *, enabled: bool) -> Iterator[None]:
    """While entered, `tokenizer` renders with generation markers (when `enabled`)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    original = tokenizer.chat_template
    if not enabled or has_generation_markers(original or "") or _trl_patches(
            get_training_chat_template, tokenizer):
        yield
        return
    if any(_render(tokenizer, None, m) != _render(tokenizer, CHATML_TRAINING, m)
           for m in _PROBES):
        raise RecipeError(
            "trl.assistant_only_loss: the tokenizer's chat template is not plain ChatML and has "
            "no {% generation %} markers; add them around the assistant's content and end "
            "token, or set assistant_only_loss: false")
    tokenizer.chat_template = CHATML_TRAINING
    try:
        yield
    finally:
        tokenizer.chat_template = original
