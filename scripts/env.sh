# Sourced by the up and test commands: the process environment that CPU-local mode needs.
# Only variables read by third-party libraries live here; MedGo's own settings are read
# by each service's settings.py (MEDGO_* variables, see README's configuration table).
export HF_HUB_OFFLINE=1            # nothing is downloaded at run time
export TRANSFORMERS_OFFLINE=1
export HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
export VLLM_NO_USAGE_STATS=1
export DO_NOT_TRACK=1
export PYTHONUNBUFFERED=1
