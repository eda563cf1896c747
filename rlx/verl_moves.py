"""Keys that moved or were removed on the way to verl 0.9.1, and where their setting lives now.

verl's own example scripts still use some of them. A hint for such a key names the new home (or says that there is
none), never a did-you-mean to an unrelated neighbour and never `+key` to re-add it.
"""

from __future__ import annotations

# verl.experimental.reward_loop.reward_loop.migrate_legacy_reward_impl's mapping of the legacy reward sections, which
# only verl's fully-async entry point applies (tests/contract/test_verl_moves.py runs the real function on it). A
# legacy key it does not move (reward_model.model.trust_remote_code, ...) has no home in verl 0.9.1.
LEGACY_REWARD_MOVES: dict[str, str] = {
    "reward_model.num_workers": "reward.num_workers",
    "reward_model.reward_manager": "reward.reward_manager.name",
    "reward_model.reward_loop_source": "reward.reward_manager.source",
    "reward_model.reward_loop_module_path": "reward.reward_manager.module.path",
    "reward_model.reward_loop_class_name": "reward.reward_manager.module.name",
    "custom_reward_function": "reward.custom_reward_function",
    "reward_model.enable": "reward.reward_model.enable",
    "reward_model.enable_resource_pool": "reward.reward_model.enable_resource_pool",
    "reward_model.n_gpus_per_node": "reward.reward_model.n_gpus_per_node",
    "reward_model.nnodes": "reward.reward_model.nnodes",
    "reward_model.model.path": "reward.reward_model.model_path",
    "reward_model.reward_kwargs": "reward.reward_kwargs",
    "reward_model.rollout": "reward.reward_model.rollout",
    "sandbox_fusion": "reward.sandbox_fusion",
}
LEGACY_REWARD_ROOTS = ("reward_model", "custom_reward_function", "sandbox_fusion")

# Prefixes verl's schema renamed (the old one is no longer in ppo_trainer's config): the critic's FSDP settings moved
# from critic.model.fsdp_config to the engine section critic.fsdp (verl/trainer/config/critic/dp_critic.yaml).
MOVED_PREFIXES: dict[str, str] = {
    "critic.model.fsdp_config.": "critic.fsdp.",
}

# Keys verl 0.9.1 removed, with what replaces them.
REMOVED: dict[str, str] = {
    "trainer.use_legacy_worker_impl": "verl 0.9.1 has only the new worker implementation",
    "actor_rollout_ref.model.torch_dtype": "the training dtype is actor_rollout_ref.actor.fsdp_config.model_dtype and "
    "the rollout's actor_rollout_ref.rollout.dtype",
}


def legacy_reward_target(key: str) -> str | None:
    """Where verl 0.9.1 reads a legacy reward key: the new path, "" for a legacy key with no new home, None for a key
    outside the legacy sections."""
    if not (key in LEGACY_REWARD_ROOTS or key.startswith(tuple(r + "." for r in LEGACY_REWARD_ROOTS))):
        return None
    for prefix, target in LEGACY_REWARD_MOVES.items():
        if key == prefix or key.startswith(prefix + "."):
            return target + key[len(prefix) :]
    return ""


def new_home(key: str, exists) -> tuple[str, str]:
    """("moved", new key), ("removed", why) or ("", "") for a key absent from verl 0.9.1's schema.

    `exists(path)` says whether a path is in the config; a move whose target does not exist is not offered.
    """
    if key in REMOVED:
        return "removed", REMOVED[key]
    for old, new in MOVED_PREFIXES.items():
        if key.startswith(old) and exists(new + key[len(old) :]):
            return "moved", new + key[len(old) :]
    target = legacy_reward_target(key)
    if target is not None:
        if target and exists(target):
            return "moved", target
        return "removed", "verl 0.9.1 has no setting it moves to (migrate_legacy_reward_impl drops it)"
    return "", ""
