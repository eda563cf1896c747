"""Options of rlx's algorithms: paper defaults, the `RLX_ALGO_CFG` environment variable and verl's config section.

Precedence (highest first): explicit keyword arguments, `config.rlx.<algo>` (verl's `algorithm` DictConfig, for
estimators), `RLX_ALGO_CFG[<algo>]` (JSON of the resolved `algorithm.rlx` section, set by `python -m rlx.verl_entry`
in every Ray worker and by the CPU smoke engine), then `DEFAULTS`. Light: no torch, no verl.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any

ENV_VAR = "RLX_ALGO_CFG"


def _defaults() -> dict[str, dict[str, Any]]:
    """Paper defaults of every algorithm's `algorithm.rlx.<name>` options, from the specs (`Algorithm.options`)."""
    from rlx.algorithms import ALGORITHMS

    return {a.name: dict(a.options) for a in ALGORITHMS if a.options}


# Presets set the same values explicitly under algorithm.rlx.<algo>; the specs hold them for code that reads a config
# without a preset (a hand-written verl config, a unit test).
DEFAULTS: dict[str, dict[str, Any]] = _defaults()

_cache = threading.local()


def plain(node: Any) -> Any:
    """DictConfig / Mapping -> plain nested dict (other values unchanged)."""
    if isinstance(node, Mapping) or (hasattr(node, "items") and not isinstance(node, str | bytes)):
        return {str(k): plain(v) for k, v in node.items()}
    return node


def env_config() -> dict[str, Any]:
    """The parsed `RLX_ALGO_CFG` object ({} when unset).

    Raises:
        ConfigError: the variable is not a JSON object.
    """
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return {}
    cached = getattr(_cache, "env", None)
    if cached and cached[0] == text:
        return cached[1]
    from rlx.errors import ConfigError

    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{ENV_VAR} is not valid JSON: {exc}",
            where=f"env {ENV_VAR}",
            hint=f'set {ENV_VAR} to the algorithm.rlx section as JSON, e.g. \'{{"aepo": {{"alpha": 0.2}}}}\'',
        ) from exc
    if not isinstance(parsed, dict):
        raise ConfigError(
            f"{ENV_VAR} must be a JSON object", where=f"env {ENV_VAR}", hint='e.g. {"aspo": {"delta": -2.0, "k": 0.7}}'
        )
    _cache.env = (text, parsed)
    return parsed


def merge(base: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Recursive overlay of `extra` on `base` (new dict)."""
    out = dict(base)
    for key, value in (extra or {}).items():
        out[key] = merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, Mapping) else value
    return out


def algo_options(name: str) -> dict[str, Any]:
    """Options of rlx algorithm `name`: paper defaults overlaid with `RLX_ALGO_CFG[name]`."""
    return merge(DEFAULTS.get(name, {}), plain(env_config().get(name) or {}))


def resolve_options(name: str, config: Any = None, **given: Any) -> dict[str, Any]:
    """`algo_options(name)` overlaid with `config.rlx.<name>` (verl's algorithm section) and non-None keywords."""
    opts = algo_options(name)
    if config is not None and hasattr(config, "get"):
        section = config.get("rlx", None)
        section = section.get(name, None) if section is not None and hasattr(section, "get") else None
        opts = merge(opts, plain(section or {}))
    return merge(opts, {k: v for k, v in given.items() if v is not None})
