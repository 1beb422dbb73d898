"""What one rank holds in memory for the model, so the 72B memory table can be checked.

The recipes' per-GPU figures (docs/training.md, `bench/trainer.py --only memory`) are a
model: bf16 weights partitioned over the ranks under ZeRO-3, fp32 master weights,
gradients and Adam moments for the trainable (LoRA) parameters only. Every stage logs
what a rank really holds at the end of training, so a rehearsal on CPU checks that
model on the real partitioning and a GPU job reports its peak.

On CUDA the allocator's peak is the figure. On CPU nothing tracks tensor memory, so the
live tensors are counted once training has finished: every storage reachable from
Python, counted once — by then that is the model states (weight partitions, master and
gradient buffers, optimizer moments), with no activations left.
"""

from __future__ import annotations

import gc
import resource
import sys
import warnings
from typing import Any

MIB = float(1 << 20)


def _live_tensor_bytes() -> int:
    import torch

    seen: set[tuple[int, int]] = set()
    total = 0
    with warnings.catch_warnings():  # isinstance() on deprecated torch aliases warns
        warnings.simplefilter("ignore", FutureWarning)
        tensors = [obj for obj in gc.get_objects() if isinstance(obj, torch.Tensor)]
    for tensor in tensors:
        try:
            if tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
        except (RuntimeError, ReferenceError):  # released or non-storage tensors
            continue
        key = (storage.data_ptr(), storage.nbytes())
        if key[0] and key not in seen:
            seen.add(key)
            total += key[1]
    return total


def parameter_counts(model: Any) -> tuple[int, int]:
    """(all, trainable) parameters, counting ZeRO-3 placeholders at their full size."""
    total = trainable = 0
    for param in model.parameters():
        n = int(getattr(param, "ds_numel", param.numel()))
        total += n
        trainable += n if param.requires_grad else 0
    return total, trainable


def rank_memory(model: Any) -> dict[str, float]:
    """
    `model_state_mib` (CUDA peak allocated, or the live tensors on CPU), `peak_rss_mib`
    (the process's resident peak, libraries included) and the parameter counts the memory
    model needs.
    """
    import torch

    if torch.cuda.is_available():
        state = float(torch.cuda.max_memory_allocated())
    else:
        gc.collect()
        state = float(_live_tensor_bytes())
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin"
                                                                 else 1024)
    total, trainable = parameter_counts(model)
    return {"model_state_mib": state / MIB, "peak_rss_mib": rss / MIB,
            "parameters": float(total), "trainable_parameters": float(trainable)}


def log_line(rank: int, memory: dict[str, float]) -> str:
    """One line per rank in the job log; `bench/trainer.py` reads it back."""
    return (f"[rank {rank}] memory: model states {memory['model_state_mib']:.1f} MiB, "
            f"peak RSS {memory['peak_rss_mib']:.0f} MiB, parameters "
            f"{memory['parameters']:.0f} ({memory['trainable_parameters']:.0f} trainable)")
