"""rlx's verl plugin: registers every algorithm spec's policy losses and advantage estimators with verl's registries.

verl imports this module (entry-point group `verl.plugins`, declared in rlx's pyproject) in every process that imports
verl, Ray workers included. It imports the `verl_module` of every spec (`rlx.algorithms.Algorithm`), rlx's own
(`rlx.verl_algos.<name>`) and third-party ones alike, and each registers the names its spec declares:

- policy losses (`actor_rollout_ref.actor.policy_loss.loss_mode`): rlx's `rlx_aepo`, `rlx_gepo`;
- advantage estimators (`algorithm.adv_estimator`): rlx's `rlx_aspo`, `rlx_vapo`.

Interfaces (stable; other rlx modules and the CPU smoke engine depend on them):

- Losses have verl's signature `(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean",
  config=None, rollout_is_weights=None)` plus keyword-only extras: `rlx_aepo` takes `entropy` ([bs, T]) and
  `alpha`, `sg_scope`, `weight_floor`; `rlx_gepo` takes `log_denom` ([bs], log of the group expectation Ê_q[q] from
  `rlx.ops.gepo.group_log_denominator`). They multiply by `rollout_is_weights`, reduce with verl's `agg_loss(...,
  **config.global_batch_info)` and return `actor/pg_clipfrac`, `actor/ppo_kl`, `actor/pg_clipfrac_lower` plus their
  own metrics. verl's `ppo_loss` cannot pass the extras, so when a keyword is None the loss reads it from
  `loss_extras(...)`, a context the rlx actor loss (`rlx.verl_entry.RlxActorLoss`) opens around verl's `ppo_loss`.
  AEPO without entropy raises; GEPO without a denominator falls back to treating the micro-batch as one group (exact
  only when the micro-batch is one prompt group), logs a warning once and reports `actor/gepo_denominator_fallback`=1.
- Estimators have verl's generic signature `fn(token_level_rewards, response_mask, config, index=None, **kwargs)`
  (`config` = verl's `algorithm` DictConfig) and return (advantages, returns). Keyword extras: `rlx_aspo` takes
  `first_code_pos`, `used_code` ([bs]; -1 / False without code), `correct=None` (default: sequence score > 0),
  `code_pass=None`, `lengths=None`, `values=None` (for base `gae`); `rlx_vapo` takes `values` ([bs, T]). When verl's
  generic call omits them they come from `estimator_extras(...)`, opened by the rlx trainer (`rlx.verl_entry`).
  Their diagnostics are left in `estimator_metrics` for the trainer to log.
- Options: keyword arguments when given, else `config.rlx.<algo>` (estimators), else `algo_options(algo)`, which reads
  the JSON object in env `RLX_ALGO_CFG` (the resolved `algorithm.rlx` section: `{"aepo": {...}, ...}`; rlx's
  entrypoint and the smoke engine set it), else the paper defaults in `DEFAULTS`.
- A third-party package's `verl_module` is imported the same way, so its losses and estimators are registered in
  every verl process without a `verl.plugins` entry of its own.
- `ensure_registered()` imports verl and raises `RlxError` if any spec's `plugin_names` is missing (verl swallows
  plugin import errors at DEBUG level).

The shared plumbing (`loss_extras`, `estimator_extras`, `estimator_metrics`) is `rlx.verl_algos.common`, re-exported
here; the maths live in `rlx.ops`.
"""

from __future__ import annotations

import logging
import os

from rlx.ops.options import DEFAULTS, ENV_VAR, algo_options, resolve_options  # noqa: F401 (public API)
from rlx.verl_algos.common import estimator_extras, estimator_metrics, loss_extras  # noqa: F401 (public API)

logger = logging.getLogger(__name__)


def _own(kind: str) -> tuple[str, ...]:
    """The verl names of `kind` that rlx's own algorithms register (the rlx trainer hands their extras over)."""
    from rlx.algorithms import ALGORITHMS

    return tuple(
        dict.fromkeys(a.plugin_names[kind] for a in ALGORITHMS if kind in a.plugin_names and a.origin == "rlx")
    )


POLICY_LOSSES = _own("policy_loss")
ADV_ESTIMATORS = _own("adv_estimator")


# ---- registration check ------------------------------------------------------------------------------------------


def _loading_problem() -> str | None:
    """Why verl would not load this plugin by itself in a fresh process (a Ray worker), or None."""
    from importlib.metadata import entry_points

    modules = [m.strip() for m in os.environ.get("VERL_USE_EXTERNAL_MODULES", "").split(",") if m.strip()]
    if __name__ in modules:
        return None
    policy = os.environ.get("VERL_USE_EXTERNAL_PLUGINS", "auto").strip().lower()
    if policy == "none":
        return "VERL_USE_EXTERNAL_PLUGINS=none switches verl's plugin loading off"
    if policy != "auto" and "rlx" not in [p.strip() for p in policy.split(",")]:
        return f"VERL_USE_EXTERNAL_PLUGINS={policy} does not list 'rlx'"
    if not any(ep.name == "rlx" and ep.value == __name__ for ep in entry_points(group="verl.plugins")):
        return "the 'rlx' entry point of group verl.plugins is not installed in this interpreter"
    return None


def ensure_registered() -> None:
    """Check that verl has rlx's losses and estimators, and that it will load them in fresh processes too.

    Imports verl, then checks (1) every rlx name is in `POLICY_LOSS_REGISTRY` / `ADV_ESTIMATOR_REGISTRY` and (2) verl's
    own plugin loading will import this module in a new interpreter (Ray workers rely on it): the `verl.plugins`
    entry point is installed and neither `VERL_USE_EXTERNAL_PLUGINS` nor `VERL_USE_EXTERNAL_MODULES` excludes it.

    Raises:
        RlxError: a name is missing or verl would not load the plugin (verl logs plugin import errors only at DEBUG).
    """
    import verl  # noqa: F401  (loads the verl.plugins entry points)
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    from rlx.algorithms import ALGORITHMS

    registries = {"policy_loss": POLICY_LOSS_REGISTRY, "adv_estimator": ADV_ESTIMATOR_REGISTRY}
    missing = [n for a in ALGORITHMS for kind, n in a.plugin_names.items() if n not in registries.get(kind, {n})]
    problem = _loading_problem()
    if missing or problem:
        from rlx.errors import RlxError

        what = f"{', '.join(missing)} not registered with verl" if missing else problem
        raise RlxError(
            f"rlx's verl plugin is not loaded: {what}",
            where=f"VERL_USE_EXTERNAL_PLUGINS={os.environ.get('VERL_USE_EXTERNAL_PLUGINS', 'auto')}",
            hint="unset VERL_USE_EXTERNAL_PLUGINS (or include 'rlx' in it) and reinstall rlx in this interpreter "
            "(`pip install -e .`); `python -c 'import rlx.verl_plugin'` shows an import error if there is one",
        )


def _install_tracking() -> None:
    """In a job rlx launched (`RLX_VERL_TRACKING=1`), verl's MLflow logger sends through rlx's journal
    (`rlx.track.verl_tracking`): a tracking outage neither stalls a step nor loses its metrics."""
    from rlx.track import verl_tracking

    if verl_tracking.wanted():
        try:
            verl_tracking.install()
        except Exception as e:  # noqa: BLE001 - tracking must never stop verl from loading rlx's algorithms
            logger.warning("rlx: verl's MLflow logger left as is: %s", e)


def _import_spec_modules() -> None:
    """Import the `verl_module` of every plugin algorithm, so its verl names exist wherever rlx's plugin is loaded.

    A module that fails to import is logged and skipped: `ensure_registered` then names what it would have registered.
    """
    import importlib

    from rlx.algorithms import ALGORITHMS

    for module in dict.fromkeys(a.verl_module for a in ALGORITHMS if a.verl_module and a.verl_module != __name__):
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - one broken plugin must not take rlx's algorithms down with it
            logger.warning("rlx: algorithm plugin module %s not imported: %s: %s", module, type(e).__name__, e)


_import_spec_modules()
_install_tracking()
