"""What the machine offers, detected once at start-up and handed to `resolve_plan`.

Kept apart from the plan logic so the plan is a pure function of settings, model files
and a `Hardware` value: tests describe an 8×A100 node without having one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The CPU flag that gives vLLM's CPU backend fast bfloat16 matmuls (oneDNN on AMX tiles).
# `avx512_bf16` alone is not enough: on our AVX-512 development CPU, which has it, a
# 30 M-parameter Qwen2 ran 6× slower in bf16 than in float32 (DESIGN.md machine notes).
_FAST_BF16_FLAGS = frozenset({"amx_bf16"})


@dataclass(frozen=True)
class Hardware:
    """The facts the plan depends on."""

    cuda: bool
    cpu_fast_bf16: bool


def cpu_has_fast_bf16(cpuinfo: str) -> bool:
    """True when a `flags` line of /proc/cpuinfo lists AMX bf16."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and _FAST_BF16_FLAGS & set(value.split()):
            return True
    return False


def detect_hardware(
    probe_cuda: bool = True, cpuinfo_path: Path = Path("/proc/cpuinfo")
) -> Hardware:
    """Ask torch about CUDA (the check vLLM itself makes) and the kernel about CPU flags.

    `probe_cuda=False` (device pinned to CPU) skips importing torch, which costs a
    second or two of start-up.
    """
    try:
        cpuinfo = cpuinfo_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        cpuinfo = ""
    cuda = False
    if probe_cuda:
        import torch  # deferred: only paid when the device is not pinned

        cuda = torch.cuda.is_available()
    return Hardware(cuda=cuda, cpu_fast_bf16=cpu_has_fast_bf16(cpuinfo))
