"""`--deep`: validate against verl itself (imports verl, ~4 s). Never part of the default path.

Runs verl's real `validate_config` on a resolved copy of the config, and checks that the configured estimator and
loss are in verl's registries after `import verl` (which loads plugins, rlx's included).
"""

from __future__ import annotations

import contextlib
import copy
import io

from rlx import verl_keys as K
from rlx.validate.report import Problem
from rlx.validate.rules import ERROR


def run_verl_validate_config(config) -> str | None:
    """verl's own validate_config on `config`; None when it passes, else the first line of what it raised."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = copy.deepcopy(config)
    OmegaConf.set_struct(cfg, False)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), _quiet_warnings():
            validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except Exception as e:  # noqa: BLE001 - whatever verl raises is the finding
        cause = e.__cause__ or e
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"
    return None


@contextlib.contextmanager
def _quiet_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _is_local_path_problem(text: str) -> bool:
    # verl's critic check loads the tokenizer from critic.model.path: absent models are a cluster fact, not an error.
    return any(
        s in text for s in ("OSError", "Repo id", "does not appear to have", "No such file", "HFValidationError")
    )


def deep_problems(resolved, ctx) -> list[Problem]:
    import verl  # noqa: F401 - loads the verl.plugins entry points
    from verl.trainer.ppo import core_algos

    from rlx.algorithms import ALGORITHMS
    from rlx.verl_plugin import ensure_registered

    with contextlib.suppress(Exception):  # a missing name is reported below, at the key that names it
        ensure_registered()
    plugin_names = {n for a in ALGORITHMS for n in a.plugin_names.values()}  # rlx's and plugin packages'
    out: list[Problem] = []
    for path, registry, what in (
        (K.ADV_ESTIMATOR, core_algos.ADV_ESTIMATOR_REGISTRY, "advantage estimator"),
        (K.LOSS_MODE, core_algos.POLICY_LOSS_REGISTRY, "policy loss"),
    ):
        name = ctx.value(path)
        if isinstance(name, str) and name in plugin_names and name not in registry:
            out.append(
                Problem(
                    "RLX304",
                    ERROR,
                    path,
                    f"{what} '{name}' is not in verl's registry after import: rlx's verl plugin did not register it",
                    "check `pip show rlx` in this environment and that VERL_USE_EXTERNAL_PLUGINS does not exclude rlx",
                    ctx.source(path),
                )
            )
    try:
        cfg = copy.deepcopy(resolved.config)
        from rlx.resolve import Resolved  # noqa: F401 - the type of `resolved`

        raised = run_verl_validate_config(cfg)
    except Exception as e:  # noqa: BLE001
        raised = f"{type(e).__name__}: {e}"
    if raised and not _is_local_path_problem(raised):
        out.append(
            Problem(
                "RLX290",
                ERROR,
                "",
                f"verl's validate_config raised {raised}",
                "see the static problems above; report a bug if none explains it",
                "verl",
            )
        )
    return out
