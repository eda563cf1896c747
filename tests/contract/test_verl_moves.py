"""rlx's table of moved and removed keys (`rlx.verl_moves`) against verl 0.9.1 itself.

The legacy reward keys are moved by verl's own `migrate_legacy_reward_impl` (imports verl's reward loop, ~5-20 s once
per module): each legacy key is set alone to a unique marker, the real function runs, and the marker must land
exactly where rlx's hint says (or nowhere, for a key rlx calls homeless).
"""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf, open_dict

from rlx.resolve import flatten, has_key, verl_defaults, verl_defaults_container
from rlx.verl_moves import LEGACY_REWARD_ROOTS, MOVED_PREFIXES, REMOVED, legacy_reward_target

DEFAULTS = flatten(verl_defaults_container())
# Every leaf of the legacy sections in verl's schema, plus reward_kwargs, which the schema lacks and DAPO scripts add.
LEGACY_KEYS = sorted(k for k in DEFAULTS if k.split(".")[0] in LEGACY_REWARD_ROOTS)
LEGACY_KEYS += ["reward_model.reward_kwargs.max_resp_len", "reward_model.reward_kwargs.overlong_buffer_cfg.len"]


@pytest.fixture(scope="module")
def migrate():
    from verl.experimental.reward_loop.reward_loop import migrate_legacy_reward_impl

    return migrate_legacy_reward_impl


@pytest.mark.parametrize("key", LEGACY_KEYS)
def test_legacy_reward_key_lands_where_the_hint_says(migrate, key):
    cfg = verl_defaults()
    marker = f"marker-{key}"
    with open_dict(cfg):
        OmegaConf.update(cfg, key, marker, merge=True, force_add=True)
        if key in ("reward_model.reward_loop_module_path", "reward_model.reward_loop_class_name"):
            # verl moves these two only together with reward_loop_source (they name the module it loads from)
            cfg.reward_model.reward_loop_source = "importlib"
    migrated = migrate(cfg)
    landed = [k for k, v in flatten(OmegaConf.to_container(migrated, resolve=False)).items() if v == marker]
    target = legacy_reward_target(key)
    assert target is not None
    assert landed == ([target] if target else []), f"{key}: verl moves it to {landed}, rlx says {target!r}"


def test_moved_prefixes_point_at_real_keys():
    cfg = verl_defaults()
    for old, new in MOVED_PREFIXES.items():
        assert not has_key(cfg, old.rstrip(".")), f"{old} still exists in verl's schema"
        assert has_key(cfg, new.rstrip(".")), f"{new} is not in verl's schema"
        assert any(k.startswith(new) for k in DEFAULTS)


def test_removed_keys_are_gone():
    cfg = verl_defaults()
    for key in REMOVED:
        assert not has_key(cfg, key), f"{key} is still in verl's schema"
