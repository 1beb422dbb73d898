"""The training stages, one module each: `pretrain`, `sft`, and `preference` (DPO and KTO,
one implementation parameterised by the TRL trainer). `base` holds what they share.

Every stage module exposes `run(recipe, out_dir, *, progress=True) -> RunResult`;
`STAGES` in `training/cli.py` maps stage names to those functions.
"""
