"""YAML configuration files, shared by every wing of the trainer.

Training recipes (`training/recipe.py`) and SFT mixtures (`data/sft/mixture.py`) are
both YAML files with `--set key.sub=value` overrides and packaged defaults found by
name. This module holds what they share, so the data wing needs nothing from training:
one error type the CLI prints as one line, the YAML loader, the override rule, and the
lookup of a packaged file by name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says which key and what would be
    valid. `medgo-train` prints it as one line and exits 2."""


class _YamlLoader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where `1e-5` is a *string* (TRL would accept it and fail
    later in the optimizer); this loader reads exponent floats as YAML 1.2 does."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass: no object tags


def yaml_error_where(exc: yaml.YAMLError) -> str:
    """Where a YAML error is (`line 3, column 7`), never what is there: PyYAML's own
    message quotes the offending line, which would carry a file's contents into an API
    error or a log (a recipe path pointed at a secret would print it)."""
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unreadable"


def apply_override(
    raw: dict[str, Any], item: str, error: type[ConfigError] = ConfigError
) -> None:
    """`trl.learning_rate=1e-5` → raw["trl"]["learning_rate"] = 1e-5 (YAML-typed value).

    Raises `error` (the caller's own `ConfigError` subclass, so a recipe reports a
    `RecipeError` and a mixture a `SourceError`)."""
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise error(f"override {item!r} must look like key.sub=value")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise error(f"override {item!r}: {part!r} is not a mapping")
        node = child
    try:
        node[parts[-1]] = load_yaml(value)
    except yaml.YAMLError as exc:
        raise error(f"override {item!r}: value is not valid YAML "
                    f"({yaml_error_where(exc)})") from None


def resolve_packaged(
    name: str | Path, directory: Path, what: str, error: type[ConfigError] = ConfigError
) -> Path:
    """A file path as given, or the packaged `<directory>/<name>.yaml` (`medgo-72b-sft`).

    A name the operating system refuses outright (longer than a file name may be) is
    the caller's mistake like any unknown name, not an internal error.
    """
    path = Path(name)
    try:
        if path.exists() or path.suffix in (".yaml", ".yml"):
            return path
        packaged = directory / f"{name}.yaml"
        if packaged.exists():
            return packaged
    except OSError as exc:
        raise error(f"no {what} file {name!r}: {exc.strerror}") from None
    known = sorted(p.stem for p in directory.glob("*.yaml"))
    raise error(f"no {what} file {name!r} and no packaged {what} of that name; "
                f"packaged: {', '.join(known)}")
