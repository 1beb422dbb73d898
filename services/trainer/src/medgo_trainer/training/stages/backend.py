"""The one thing that differs between a GPU job and the same job on this CPU: the backend.

A recipe says what to train (bf16, DeepSpeed ZeRO-3, FlashAttention-2); `for_this_machine`
turns its `trl:` keyword arguments into those the machine can run, changing only how,
never what:

* on GPUs nothing changes but ZeRO++'s `"auto"` partition size (`ds_config`);
* without CUDA, DeepSpeed runs on its CPU accelerator over gloo and attention on SDPA
  (FlashAttention-2 is a CUDA kernel). Transformers hands Accelerate no communication
  backend when DeepSpeed is set, and Accelerate without CUDA then assumes a single
  process, so under `torchrun --nproc_per_node 2` DeepSpeed's batch check fails
  (`train_batch_size 2 != 2 * 1 * 2`). The fix is to configure Accelerate's state first —
  `ACCELERATE_USE_DEEPSPEED=true` and a gloo `PartialState` — and tell the training
  arguments to use it (`accelerator_config.use_configured_state`), with `use_cpu` so
  bf16 is accepted on a CPU (AVX-512 runs it).

The same `torchrun ... -m medgo_trainer.cli <stage>` command runs on both (docs/training.md).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from medgo_trainer.training.deepspeed_config import load_deepspeed, resolve_deepspeed

log = logging.getLogger(__name__)

#: Attention kernels that need CUDA, and what runs the same computation on a CPU.
_CPU_ATTENTION = {"flash_attention_2": "sdpa", "flash_attention_3": "sdpa"}


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def for_this_machine(trl: dict[str, Any]) -> dict[str, Any]:
    """The recipe's TRL kwargs with this machine's backend filled in (a new dict)."""
    kwargs = dict(trl)
    if kwargs.get("deepspeed"):
        kwargs["deepspeed"] = resolve_deepspeed(load_deepspeed(kwargs["deepspeed"]))
    if has_cuda():
        return kwargs
    init = dict(kwargs.get("model_init_kwargs") or {})
    kernel = init.get("attn_implementation")
    if kernel in _CPU_ATTENTION:
        init["attn_implementation"] = _CPU_ATTENTION[kernel]
        kwargs["model_init_kwargs"] = init
        log.info("no CUDA: attention %s -> %s", kernel, init["attn_implementation"])
    if kwargs.get("deepspeed"):
        _configure_cpu_deepspeed_state()
        accelerator = dict(kwargs.get("accelerator_config") or {})
        kwargs["accelerator_config"] = {**accelerator, "use_configured_state": True}
        kwargs["use_cpu"] = True
        log.info("no CUDA: DeepSpeed on its CPU accelerator over gloo")
    return kwargs


def _configure_cpu_deepspeed_state() -> None:
    """
    Accelerate's process state for DeepSpeed over gloo (one process without torchrun).
    A state made earlier in this process (the recipe's dry-run validation constructs
    training arguments without DeepSpeed) is dropped first: the state is a singleton.
    """
    from accelerate import PartialState
    from accelerate.state import AcceleratorState

    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"),
                       ("LOCAL_WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(_free_port())
    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState(backend="gloo")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_main_process() -> bool:
    """Rank 0 of the job (torchrun's `RANK`), known before any trainer exists."""
    return int(os.environ.get("RANK", "0")) == 0


def is_partitioned() -> bool:
    """Whether ZeRO-3 is in force in this process: loading a model here is collective."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    return bool(is_deepspeed_zero3_enabled())
