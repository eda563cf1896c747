"""Applying one override to a config, as Hydra would (`key=`, `+key=`, `++key=`, `~key`), with the error a user
can act on: an unknown key names the closest real one and where verl moved or removed it."""

from __future__ import annotations

from rlx.errors import ConfigError, did_you_mean
from rlx.resolve.overrides import Op, Override
from rlx.resolve.paths import has_key, leaf_paths, select

# Sections verl turns into strict dataclasses, and the free-form maps inside them that accept new keys.
_STRICT_ROOTS = ("actor_rollout_ref.", "critic.")
_FREE_MAPS = (
    "actor_rollout_ref.model.override_config.",
    "actor_rollout_ref.rollout.engine_kwargs.",
    "critic.model.override_config.",
)


def _unknown_key_error(cfg, path: str, text: str, where: str, *, op: str = "") -> ConfigError:
    from rlx.verl_moves import new_home

    value = text.partition("=")[2] if "=" in text else ""
    kind, home = new_home(path, lambda p: has_key(cfg, p))
    message = f"unknown config key '{path}' (not in verl {_verl_version()}'s ppo_trainer config)"
    if op == "~":
        hint = "there is nothing to delete: remove the override"
    elif kind == "moved":
        return ConfigError(
            message + f": verl {_verl_version()} moved it to {home}",
            where=where or text,
            hint=f"write `{home}={value}` instead" if value else f"use {home} instead",
            code="RLX102",
            path=path,
        )
    elif kind == "removed":
        return ConfigError(
            message + f": verl {_verl_version()} removed it",
            where=where or text,
            hint=f"delete the override: {home}",
            code="RLX102",
            path=path,
        )
    else:
        hint = ""
    parts = path.split(".")
    # The deepest existing parent, and the closest key there.
    parent_path, depth = "", 0
    for part in parts:
        probe = f"{parent_path}.{part}" if parent_path else part
        if not has_key(cfg, probe):
            break
        parent_path, depth = probe, depth + 1
    i = min(depth, len(parts) - 1)
    parent = select(cfg, parent_path) if parent_path else None
    siblings = list(parent) if isinstance(parent, dict) else (list(cfg) if not parent_path else [])
    close = did_you_mean(parts[i], siblings) if siblings else []
    fixed = ".".join([*parts[:i], close[0], *parts[i + 1 :]]) if close else None
    free = path.startswith(_FREE_MAPS) or not path.startswith(_STRICT_ROOTS)
    if (fixed is None or not has_key(cfg, fixed)) and not (free and parent_path and depth == len(parts) - 1):
        # Never the key's own parent section (`engine_kwargs.sglang` for `engine_kwargs.sglang.attention_backend`).
        leaves = [k for k in leaf_paths(cfg) if not path.startswith(k + ".")]
        full = did_you_mean(path, leaves, n=1, cutoff=0.75)
        fixed = full[0] if full else fixed
    if fixed:
        # With the value, the suggestion is an override the user can paste (and the hint round trip applies).
        mean = f"did you mean `{fixed}={value}`?" if value and has_key(cfg, fixed) else f"did you mean '{fixed}'?"
        hint = f"{hint}; {mean}" if hint else mean
    if op != "~":
        if not free:
            add = (
                f"{parts[0]}.* is turned into verl dataclasses, which refuse keys they lack: `+{path}` would fail "
                "inside the job"
            )
        else:
            # In a free-form map the key is the user's own (engine kwargs): `+` with the value is the fix.
            shown = value if path.startswith(_FREE_MAPS) else "VALUE"
            add = f"To add a key verl's schema lacks, write `+{path}={shown}`"
        hint = (hint + " " if hint else "") + add
    return ConfigError(message, where=where or text, hint=hint, code="RLX102", path=path)


def _verl_version() -> str:
    from rlx import VERL_VERSION

    return VERL_VERSION


def _opened(cfg):
    """`open_dict(cfg)`, or nothing when the struct flag is already off.

    Toggling the flag invalidates OmegaConf's flag cache over the whole tree, so doing it once per override made
    resolving an experiment file with 20,000 overrides quadratic (about a minute); `resolve` opens the tree once.
    """
    from contextlib import nullcontext

    from omegaconf import OmegaConf, open_dict

    return open_dict(cfg) if OmegaConf.is_struct(cfg) else nullcontext()


def apply_override(cfg, ov: Override, where: str = "") -> None:
    """Apply one override in Hydra's semantics, with rlx's error messages."""
    from omegaconf import OmegaConf

    exists = has_key(cfg, ov.path)
    loc = where or f"override '{ov.text}'"
    if ov.op is Op.SET and not exists:
        raise _unknown_key_error(cfg, ov.path, ov.text, loc)
    if ov.op is Op.ADD and exists:
        raise ConfigError(
            f"'+{ov.path}' adds a key that already exists",
            where=loc,
            hint=f"drop the `+`: `{ov.path}={ov.render().split('=', 1)[1]}` (or `++` to force)",
            code="RLX108",
            path=ov.path,
        )
    if ov.op is Op.DELETE:
        if not exists:
            raise ConfigError(
                f"'~{ov.path}' deletes a key that does not exist",
                where=loc,
                hint=_unknown_key_error(cfg, ov.path, ov.text, loc, op="~").hint,
                code="RLX108",
                path=ov.path,
            )
        parent_path, _, leaf = ov.path.rpartition(".")
        parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
        with _opened(cfg):
            del parent[leaf]
        return
    with _opened(cfg):
        try:
            try:
                # The root is open, so the plain update adds keys; `force_add` would toggle the struct flag of the
                # parent (and so invalidate its whole subtree's flag cache) on every call.
                OmegaConf.update(cfg, ov.path, ov.value, merge=False)
            except Exception:  # a node below the root that is closed on its own: force it, as Hydra's `+` does
                OmegaConf.update(cfg, ov.path, ov.value, merge=False, force_add=True)
        except Exception as e:  # omegaconf's ValidationError and friends: a value that cannot go there
            raise ConfigError(
                f"cannot set '{ov.path}': {e}".splitlines()[0],
                where=loc,
                hint="check the value's type against verl's default",
                code="RLX103",
                path=ov.path,
            ) from None
