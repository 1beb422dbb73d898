"""`medgo-train loop`: clinicians' ratings → DPO → evaluation → gated promotion.

One run closes the feedback loop on whatever the registry has promoted:

1. export: the feedback service's DPO export over HTTP, refused below `--min-pairs`
   (before anything is written; `--skip-if-few-pairs` makes that a clean exit, for
   the weekly CronJob);
2. baseline: the promoted checkpoint (on a fresh install, the one `serving.json`
   serves, adopted into the registry so the new checkpoint has a parent);
3. train: the `dpo` stage on that export, on top of the baseline (its adapter is the
   SFT policy the DPO reference is computed with);
4. register: a candidate with lineage (parent, data snapshot hash, resolved recipe);
5. evaluate: the candidate has to be *served* to be evaluated, and the simplest honest
   way is the production path itself — vLLM started through the inference service's
   launcher (`medgo-inference`) serving the base with both the baseline and the
   candidate adapter, so the two are measured by the same engine on the same items
   (`evaluate_models`); it is stopped when both reports are written;
6. promote: the registry's gate (`eval.gate` policy on the two reports); on a pass
   `serving.json` names the candidate and the baseline is retired. Inference picks it
   up when it is restarted.

Steps 3 and 5 are the compute, and run where `--executor` says: `local` (default)
trains in this process and starts the temporary vLLM as a child process; `k8s`
(`executors/k8s_loop.py`, the weekly CronJob) submits the training as a PyTorchJob and
the evaluation as a GPU batch Job whose vLLM sidecar runs the inference image, waits
for each, and reads what they wrote on the shared model store. Everything else —
export, registry, gate, promotion — runs here either way.

Everything a run writes lives in `<model_dir>/checkpoints/<id>/`: the export
(`dpo.jsonl`), the stage run (`run/`, adapter to serve in `run/serving/` with its
`eval-report.json`), the baseline's report (`eval/baseline.json`) and, locally, the
temporary server's log (`eval/vllm.log`). A failed gate leaves the candidate
registered, the manifest untouched, and says how to promote it after review.

Each round serves "previous adapter, then the new DPO delta" as one LoRA
(`stages.preference.compose_serving_adapter`). Concatenated exactly, its rank would
grow by the DPO rank every round; the recipe's `max_serving_rank` bounds it (medgo-tiny:
16, the inference default — rank 16 exact after the first round, SVD-compressed to 16
from the second on, the approximation error in the run's `metrics.json`). The
evaluation server reserves the served adapters' rank rounded up to one vLLM accepts,
so never more than that cap: what it loads, inference with the default settings loads.
"""
