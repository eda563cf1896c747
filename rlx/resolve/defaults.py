"""verl's packaged default config: found and composed with Hydra without importing verl (which costs ~5 s), and
cached as JSON keyed by the config folder's fingerprint."""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import cast

from rlx.errors import ConfigError


def verl_config_dir() -> Path:
    """verl's packaged Hydra config folder, found without importing verl."""
    spec = importlib.util.find_spec("verl")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "verl is not installed in this Python environment",
            hint="run scripts/setup.sh (it installs verl==0.9.1), or `pip install verl==0.9.1`",
            exit_code=3,
        )
    return Path(spec.origin).parent / "trainer" / "config"


def compose_verl(config_name: str = "ppo_trainer") -> dict:
    """Compose verl's packaged config with Hydra (no verl import) and return it as a plain container.

    Interpolations stay unresolved and `???` stays MISSING, so `OmegaConf.create` of the result is the composed config.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
            cfg = compose(config_name=config_name)
    finally:
        GlobalHydra.instance().clear()
    return cast(dict, OmegaConf.to_container(cfg, resolve=False))


def _fingerprint(config_dir: Path) -> str:
    """Changes whenever any file of verl's config folder changes (path, size, mtime)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(config_dir.rglob("*.yaml")):
        st = p.stat()
        h.update(f"{p.relative_to(config_dir)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    return Path(
        os.environ.get("RLX_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "rlx"
    )


@functools.lru_cache(maxsize=4)
def _defaults_json(config_name: str) -> str:
    """verl's composed defaults as JSON text, from a cache keyed by the config folder's fingerprint.

    Composing takes 0.3-1 s (Hydra's import and search path); reading the cache takes ~10 ms. The cache is only an
    optimisation: any problem reading or writing it falls back to composing.
    """
    import json

    config_dir = verl_config_dir()
    path = cache_dir() / f"verl-{config_name}-{_fingerprint(config_dir)}.json"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    text = json.dumps(compose_verl(config_name))
    try:
        from rlx.fsutil import atomic_write_text

        atomic_write_text(path, text)
    except Exception:  # noqa: BLE001 - a read-only home must not break resolution
        pass
    return text


def verl_defaults_container(config_name: str = "ppo_trainer") -> dict:
    """verl's composed default config as a fresh plain dict (interpolations unresolved)."""
    import json

    return json.loads(_defaults_json(config_name))


def verl_defaults(config_name: str = "ppo_trainer"):
    """A fresh copy of verl's composed default config (a struct-mode DictConfig)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(verl_defaults_container(config_name))
    OmegaConf.set_struct(cfg, True)
    return cfg
