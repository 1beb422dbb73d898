"""Evaluation harness: CBLUE, multiple choice and safety against any OpenAI-compatible
endpoint, reports and run comparison, and the promotion gate (see docs/evaluation.md).

The trainer's promote step needs only `evaluate_gate`, `GatePolicy` and `EvalReport`.
"""

from medgo_trainer.evaluation.gate import GateDecision, GatePolicy, evaluate_gate
from medgo_trainer.evaluation.report import EvalReport
from medgo_trainer.evaluation.runner import run_eval

__all__ = ["EvalReport", "GateDecision", "GatePolicy", "evaluate_gate", "run_eval"]
