"""Reading a config by dotted path: whether a key exists (a `???` value does), its value, and every leaf."""

from __future__ import annotations

from typing import Any


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()


def has_key(cfg, path: str) -> bool:
    from omegaconf import DictConfig, ListConfig

    node = cfg
    for part in path.split("."):
        if isinstance(node, DictConfig):
            if part not in node.keys():  # `in node` is False for a `???` (MISSING) value
                return False
            node = node._get_node(part)
        elif isinstance(node, ListConfig) and part.lstrip("-").isdigit():
            if int(part) >= len(node):
                return False
            node = node._get_node(int(part))
        else:
            return False
    return True


def select(cfg, path: str, default: Any = ABSENT) -> Any:
    """The value at `path`, with interpolations resolved where they can be; `default` if absent."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not has_key(cfg, path):
        return default
    try:
        value = OmegaConf.select(cfg, path, throw_on_missing=False, throw_on_resolution_failure=False)
    except OmegaConfBaseException:
        value = OmegaConf.select(cfg, path, throw_on_resolution_failure=False)
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=False)
    return value


def leaf_paths(cfg, prefix: str = "") -> dict[str, Any]:
    """Flat {dotted path: raw value} of every leaf, interpolations left unresolved. Empty containers are leaves."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg
    return flatten(container, prefix)


def flatten(container: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(container, dict) and container:
        for k, v in container.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = container
    return out
