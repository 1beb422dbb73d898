"""The files every trainer job leaves in its output directory, whatever its wing.

`metrics.json` is written last and only by a finished run: its presence is what the job
API, the loop and the Kubernetes executor take as "complete", so every job that writes
an output directory (a training stage, `build-sft`) shares this one name.
"""

METRICS_FILE = "metrics.json"
#: The resolved recipe saved beside a training checkpoint (lineage for the registry).
RESOLVED_RECIPE = "recipe.resolved.yaml"
