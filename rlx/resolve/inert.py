"""Keys that verl 0.9.1 never reads under the rest of the resolved config: a preset may set them, they do nothing.

Each rule cites where verl reads the key and the switch it reads it under:

- `actor_rollout_ref.actor.kl_loss_coef` / `kl_loss_type`: read only inside `if config.use_kl_loss:`
  (verl/workers/utils/losses.py, the KL-loss block of the policy loss).
- `algorithm.kl_ctrl.*` and `algorithm.kl_penalty`: the KL-in-reward controller is built and applied only when
  `algorithm.use_kl_in_reward` is true (verl/trainer/ppo/ray_trainer.py, `get_kl_controller` and `apply_kl_penalty`).
- `actor_rollout_ref.ref.*`: no reference policy exists unless `need_reference_policy` says so: the KL loss or the
  KL in the reward is on (verl/trainer/ppo/utils.py).
- `critic.*` (except `critic.enable`): no critic worker exists unless `need_critic` says so: `critic.enable` when set,
  else `algorithm.adv_estimator == gae` (verl/trainer/ppo/utils.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

KL_LOSS_KEYS = ("actor_rollout_ref.actor.kl_loss_coef", "actor_rollout_ref.actor.kl_loss_type")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def has_critic(get: Callable[[str, Any], Any]) -> bool:
    """verl's `need_critic`: `critic.enable` when set, else whether the estimator is GAE."""
    enable = get("critic.enable", None)
    if enable is not None:
        return _truthy(enable)
    return str(get("algorithm.adv_estimator", "")) == "gae"


def inert_reason(key: str, get: Callable[[str, Any], Any]) -> str | None:
    """Why verl ignores `key` under this config (`get(dotted, default)` reads the resolved config), or None."""
    if key in KL_LOSS_KEYS and not _truthy(get("actor_rollout_ref.actor.use_kl_loss", False)):
        return "actor_rollout_ref.actor.use_kl_loss is off: verl reads it only with the KL loss on"
    if (key.startswith("algorithm.kl_ctrl.") or key == "algorithm.kl_penalty") and not _truthy(
        get("algorithm.use_kl_in_reward", False)
    ):
        return "algorithm.use_kl_in_reward is off: verl builds no KL-in-reward controller"
    if key.startswith("actor_rollout_ref.ref.") and not (
        _truthy(get("actor_rollout_ref.actor.use_kl_loss", False)) or _truthy(get("algorithm.use_kl_in_reward", False))
    ):
        return "neither the KL loss nor the KL in the reward is on: verl creates no reference policy"
    if key.startswith("critic.") and key != "critic.enable" and not has_critic(get):
        return "no critic (adv_estimator is not gae and critic.enable is unset): verl creates no critic worker"
    return None


def inert_keys(keys: Iterable[str], get: Callable[[str, Any], Any]) -> dict[str, str]:
    """{key: reason} for the given keys that verl ignores under this config."""
    out = {}
    for key in keys:
        reason = inert_reason(key, get)
        if reason is not None:
            out[key] = reason
    return out
