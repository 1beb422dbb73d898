"""`stages.memory`: what a rank reports holding, checked on tensors of known size."""

from __future__ import annotations

import pytest
from medgo_trainer.training.stages.memory import MIB, log_line, parameter_counts, rank_memory


def test_live_tensors_count_weights_and_adam_moments_once():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.Linear(512, 512))
    model[0].requires_grad_(False)  # a frozen base layer, like LoRA's
    alias = model[1].weight.view(-1)  # a view shares its storage: not counted twice
    before = rank_memory(model)["model_state_mib"]
    weight_bytes = 4 * sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
    model(torch.ones(4, 512)).sum().backward()
    optimizer.step()
    after = rank_memory(model)
    # Adam's two moments and the gradients of the trainable layer: 12 bytes a parameter.
    assert after["model_state_mib"] - before == pytest.approx(12 * trainable / MIB, rel=0.05)
    assert before >= weight_bytes / MIB
    assert after["parameters"] == weight_bytes // 4 and after["trainable_parameters"] == trainable
    assert after["peak_rss_mib"] > after["model_state_mib"]
    assert alias.numel() == 512 * 512


def test_zero3_placeholders_count_at_their_full_size():
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(4, 4)
    layer.weight.data = torch.empty(0)  # what ZeRO-3 leaves on a rank outside a gather
    layer.weight.ds_numel = 16
    assert parameter_counts(layer) == (20, 20)


def test_the_log_line_is_what_the_benchmark_reads():
    line = log_line(1, {"model_state_mib": 3.25, "peak_rss_mib": 900.4, "parameters": 5.0e6,
                        "trainable_parameters": 1.2e5})
    assert line == ("[rank 1] memory: model states 3.2 MiB, peak RSS 900 MiB, parameters "
                    "5000000 (120000 trainable)")
