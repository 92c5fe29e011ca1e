"""Service configuration: nameko YAML files whose values come from `${VAR:default}` placeholders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from nameko.cli.main import setup_yaml_parser

setup_yaml_parser()


def load_config(path: str | Path, **overrides: Any) -> dict[str, Any]:
    """Read a service's config.yaml, resolving `${VAR:default}` from the environment now."""
    with open(path) as handle:
        config = yaml.safe_load(handle)
    config.update(overrides)
    return config
