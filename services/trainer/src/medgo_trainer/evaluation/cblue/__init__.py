"""CBLUE tasks, one module per task family (see each module for its official metric)."""

from medgo_trainer.evaluation.cblue.cdee import ChipCDEE
from medgo_trainer.evaluation.cblue.cdn import ChipCDN
from medgo_trainer.evaluation.cblue.classification import (
    ChipCTC,
    ChipSTS,
    KuakeQIC,
    KuakeQQR,
    KuakeQTR,
)
from medgo_trainer.evaluation.cblue.ner import CMeEE
from medgo_trainer.evaluation.cblue.relations import CMeIE
from medgo_trainer.evaluation.cblue.text2dt import Text2DT

CBLUE_TASKS = (
    CMeEE,
    CMeIE,
    ChipCDN,
    ChipCDEE,
    ChipSTS,
    ChipCTC,
    KuakeQIC,
    KuakeQTR,
    KuakeQQR,
    Text2DT,
)

__all__ = ["CBLUE_TASKS"]
