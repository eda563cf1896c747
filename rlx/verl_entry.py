"""rlx's verl entrypoint: `python -m rlx.verl_entry <hydra overrides>` runs verl 0.9.1's v1 PPO trainer with the data
rlx's algorithms need that verl's registries alone cannot pass.

`rlx train` submits this command for algorithms whose spec sets `needs_rlx_entrypoint`; it takes the same Hydra
overrides as `python -m verl.trainer.main_ppo`. It spells no algorithm: what it hands over follows the registered
functions' keyword-only parameters (`keyword_inputs`) and the spec's trainer options
(`rlx.algorithms.hooks.trainer_options`). What it adds to verl:

1. Before Ray starts: checks that rlx's plugin names are registered (`rlx.verl_plugin.ensure_registered`), requires
   `trainer.use_v1=true`, and exports the resolved `algorithm.rlx` section as JSON in `RLX_ALGO_CFG`, in this process
   and in Ray's runtime env, so every worker's plugin reads the same options.
2. In the TaskRunner: registers `rlx_<mode>` trainers (`RlxTrainerMixin` over verl's registered trainer class for
   `trainer.v1.trainer_mode`) and switches the mode to it.
3. `RlxTrainerMixin._compute_advantage` fetches, beside verl's fields, `values`, `old_log_probs`, `entropy`,
   `extra_fields` and the reward extras (`first_code_pos`, `used_code`, `correct`, `code_pass`, `response_chars`,
   emitted by the reward function as `reward_extra_info`) from the TransferQueue. It hands an rlx estimator the
   inputs it takes through `rlx.verl_plugin.estimator_extras` around verl's own `_compute_advantage`, logs its
   diagnostics, and writes per-sample fields for the actor (`actor_fields`): `rlx_log_denom` for a loss that takes
   `log_denom`, `rlx_entropy_mean/std` for one that takes `entropy_stats`, and `rlx_correct` and
   `rlx_nll_num_tokens` for the NLL term (the correct-token count of the mini-batch each row trains in, see
   `mini_batch_ids`).
4. `RlxTrainerMixin._setup` replaces the actor's loss with `RlxActorLoss`, which opens
   `rlx.verl_plugin.loss_extras(entropy=..., log_denom=..., entropy_stats=...)` around verl's `ppo_loss` and adds
   the positive-example NLL term of a spec with `nll_option`. A loss that takes `entropy` gets the current policy's
   when the actor computes it (`actor.calculate_entropy=true`), else the old policy's (`entropy` field; detached
   either way).
5. A spec with `teacher_option` set (and the critic on): `_compute_values` and `_update_critic` train the critic as
   the discriminator and write its scores as the reward (`rlx.verl_algos.gad`, whose docstring has the steps).

Critic warm-up is verl's own `trainer.critic_warmup`. The data plumbing is in pure functions (`rlx_needs`,
`reward_extras`, `estimator_inputs`, `actor_fields`) tested on CPU with verl's TensorDict/DataProto structures.
This module imports nothing heavy at import time (verl, Ray and Hydra are imported where used).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

REWARD_EXTRA_KEYS = ("first_code_pos", "used_code", "correct", "code_pass", "response_chars")
LOG_DENOM_FIELD = "rlx_log_denom"
CORRECT_FIELD = "rlx_correct"
NLL_TOKENS_FIELD = "rlx_nll_num_tokens"
ENTROPY_MEAN_FIELD = "rlx_entropy_mean"
ENTROPY_STD_FIELD = "rlx_entropy_std"
TRAINER_PREFIX = "rlx_"


# ---- what a config needs --------------------------------------------------------------------------------------------


def keyword_inputs(kind: str, name: str | None) -> frozenset[str]:
    """The keyword-only parameters of verl's registered `kind` ("policy_loss" or "adv_estimator") function `name`:
    the inputs verl's own call cannot pass, which this trainer hands over (`loss_extras` / `estimator_extras`).

    This is the protocol between an algorithm and both of rlx's trainers: a loss that takes `log_denom` gets each
    prompt group's denominator, one that takes `entropy_stats` the step batch's entropy statistics, an estimator that
    takes `values` the critic's values, and so on (the smoke engine reads the same signatures)."""
    # A plain function, not a functools.cache wrapper: `python -m rlx.verl_entry` runs this module as __main__, and
    # Ray pickles the trainer's functions by value from there, but looks a cache wrapper up by name and fails.
    import inspect

    if name is None:
        return frozenset()
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn, get_policy_loss_fn

    import rlx.verl_plugin  # noqa: F401  (registers rlx's verl names)

    fn = get_policy_loss_fn(name) if kind == "policy_loss" else get_adv_estimator_fn(name)
    return frozenset(p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY)


@dataclass(frozen=True)
class RlxNeeds:
    """Which rlx hooks a resolved verl config needs."""

    estimator: str | None  # an rlx-registered estimator (ADV_ESTIMATORS) or None
    loss: str | None  # an rlx-registered policy loss (POLICY_LOSSES) or None
    nll_coef: float  # the positive-example NLL weight (`Algorithm.nll_option`; 0: off)
    gad_key: str | None = None  # the dataset column of teacher responses (`Algorithm.teacher_option`): the critic is
    # trained as the discriminator
    nll_path: str | None = field(default=None, compare=False)  # the option that set nll_coef (for errors)
    teacher_path: str | None = field(default=None, compare=False)  # the option that set gad_key

    @property
    def estimator_inputs(self) -> frozenset[str]:
        return keyword_inputs("adv_estimator", self.estimator)

    @property
    def loss_inputs(self) -> frozenset[str]:
        return keyword_inputs("policy_loss", self.loss)

    @property
    def actor_loss(self) -> bool:
        """The actor needs `RlxActorLoss` (an rlx policy loss or the NLL term)."""
        return self.loss is not None or self.nll_coef > 0

    @property
    def batch_fields(self) -> bool:
        """`_compute_advantage` fetches the step batch for the estimator's inputs or `actor_fields`."""
        return (
            self.estimator is not None or bool({"log_denom", "entropy_stats"} & self.loss_inputs) or self.nll_coef > 0
        )

    @property
    def active(self) -> bool:
        return self.estimator is not None or self.actor_loss or self.gad_key is not None


def _get(node: Any, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if node is None or not hasattr(node, "get"):
            return default
        node = node.get(part, None)
    return default if node is None else node


def rlx_section(config: Any) -> dict[str, Any]:
    """The resolved `algorithm.rlx` section as a plain dict ({} when absent)."""
    from rlx.ops.options import plain

    return plain(_get(config, "algorithm.rlx", {}) or {})


def rlx_needs(config: Any) -> RlxNeeds:
    """Which rlx estimator / loss / NLL term / discriminator the config selects (pure; reads the verl config and the
    specs, `rlx.algorithms.hooks.trainer_options`)."""
    from rlx.algorithms.hooks import trainer_options
    from rlx.verl_plugin import ADV_ESTIMATORS, POLICY_LOSSES

    estimator = str(_get(config, "algorithm.adv_estimator", ""))
    loss = str(_get(config, "actor_rollout_ref.actor.policy_loss.loss_mode", "vanilla"))
    opts = trainer_options(lambda path, default: _get(config, path, default))
    gad_key = opts.teacher_key if opts.teacher_key and _get(config, "critic.enable") else None
    return RlxNeeds(
        estimator if estimator in ADV_ESTIMATORS else None,
        loss if loss in POLICY_LOSSES else None,
        opts.nll_coef,
        gad_key,
        nll_path=opts.nll_path,
        teacher_path=opts.teacher_path,
    )


# ---- advantage-side data plumbing (pure: TensorDict / numpy in, tensors out) -----------------------------------------


def _padded(data: Any, key: str) -> Any:
    value = data[key]
    return value.to_padded_tensor(0.0) if getattr(value, "is_nested", False) else value


def _to_width(tensor: Any, width: int) -> Any:
    """Right-pad with zeros or cut a [bs, T] tensor to `width` columns (to match the padded log-probs)."""
    import torch.nn.functional as F

    return F.pad(tensor, (0, max(width - tensor.shape[1], 0)))[:, :width]


def _column(values: list[Any]) -> Any:
    """A list of per-sample reward extras -> numpy array (None kept as NaN for numbers, False for flags)."""
    import numpy as np

    if all(isinstance(v, bool | np.bool_) or v is None for v in values):
        return np.array([bool(v) for v in values], dtype=bool)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def reward_extras(data: Any, n: int) -> dict[str, Any]:
    """Per-sample reward extras from a fetched TransferQueue TensorDict.

    Reads top-level fields (verl's colocated reward path writes `reward_extra_info` keys as fields) and, where those
    are absent, `extra_fields[i]["reward_extra_info"]` (the agent-loop path). Returns {key: ndarray[n]} for the keys
    in `REWARD_EXTRA_KEYS` that are present.
    """
    import numpy as np

    out: dict[str, Any] = {}
    keys = set(data.keys()) if hasattr(data, "keys") else set()
    for key in REWARD_EXTRA_KEYS:
        if key in keys:
            value = data[key]
            value = value.tolist() if hasattr(value, "tolist") else list(value)
            out[key] = _column(list(value))
    if "extra_fields" in keys:
        rows = data["extra_fields"]
        rows = rows.tolist() if hasattr(rows, "tolist") else list(rows)
        infos = []
        for row in rows:
            row = getattr(row, "data", row)
            info = row.get("reward_extra_info", {}) if isinstance(row, Mapping) else {}
            infos.append(info if isinstance(info, Mapping) else {})
        for key in REWARD_EXTRA_KEYS:
            if key not in out and any(key in info for info in infos):
                out[key] = _column([info.get(key) for info in infos])
    for key, value in out.items():
        if len(value) != n:
            raise ValueError(f"reward extra {key!r} has {len(value)} values for {n} samples")
    if "first_code_pos" in out:
        out["first_code_pos"] = np.nan_to_num(out["first_code_pos"], nan=-1.0)
    return out


def _uids(data: Any) -> Any:
    import numpy as np

    uid = data["uid"]
    return np.array(uid.tolist() if hasattr(uid, "tolist") else list(uid), dtype=object)


def estimator_inputs(data: Any, needs: RlxNeeds, batch_keys: Any = None) -> dict[str, Any]:
    """Keyword extras for `rlx.verl_plugin.estimator_extras` from the fetched TensorDict (rows in batch-key order),
    for the inputs the estimator takes (`keyword_inputs`).

    `values`: the critic's values padded like verl pads its batch; a reward extra (`first_code_pos`, `used_code`,
    `correct`, `code_pass`) by its own name; `lengths`: `response_chars` (so character positions meet character
    lengths); `session_keys`: the batch's TransferQueue `batch_keys`, so that a grouped estimator can follow verl's
    multi-output sessions.
    """
    wanted = needs.estimator_inputs
    if needs.estimator is None or not wanted:
        return {}
    keys = set(data.keys())
    n = len(data)
    out: dict[str, Any] = {}
    if "values" in keys and "values" in wanted:
        out["values"] = _padded(data, "values")
    if wanted & {*REWARD_EXTRA_KEYS, "lengths"}:
        extras = reward_extras(data, n)
        for key in ("first_code_pos", "used_code", "correct", "code_pass"):
            if key in extras and key in wanted:
                out[key] = extras[key]
        if "response_chars" in extras and "lengths" in wanted:
            out["lengths"] = extras["response_chars"]
    if batch_keys is not None and "session_keys" in wanted:
        out["session_keys"] = list(batch_keys)
    return out


def _correct(data: Any, n: int) -> Any:
    import torch

    extras = reward_extras(data, n)
    if "correct" in extras:
        return torch.as_tensor(extras["correct"]).reshape(-1).to(torch.float32).nan_to_num(0.0).gt(0).float()
    return _padded(data, "rm_scores").sum(-1).gt(0).float()


def mini_batch_ids(n: int, mini_batch_size: int | None, dp_size: int = 1) -> Any:
    """Which update mini-batch each row of the step batch trains in, as verl 0.9.1's v1 trainer splits it [n].

    `_update_actor` sends the step batch (in `KVBatchMeta` key order) to the actor's data-parallel ranks in
    `dp_size` contiguous chunks (`KVBatchMeta.chunk`: the first `n % dp_size` chunks one row longer), and each rank
    cuts its chunk in order into mini-batches of `mini_batch_size / dp_size` rows (`train_mini_batch` with
    `make_iterator`, `actor.shuffle=false`). Mini-batch b is therefore the b-th slice of every rank's chunk; with one
    rank it is rows [b*M, (b+1)*M). `mini_batch_size=None` (or one covering the batch) gives one mini-batch.
    """
    import torch

    rows = torch.arange(n)
    if not mini_batch_size or n == 0:
        return torch.zeros(n, dtype=torch.long)
    dp = max(int(dp_size), 1)
    per_rank = max(int(mini_batch_size) // dp, 1)
    base, extra = divmod(n, dp)
    sizes = torch.tensor([base + (1 if r < extra else 0) for r in range(dp)])
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.bucketize(rows, starts, right=True) - 1
    return (rows - starts[rank]) // per_rank


def actor_fields(data: Any, needs: RlxNeeds, *, mini_batch_size: int | None = None, dp_size: int = 1) -> dict[str, Any]:
    """Per-sample fields the rlx actor loss reads, computed once per batch on the driver.

    - `rlx_entropy_mean` / `rlx_entropy_std` [bs] (the same in every row), for a loss that takes
      `entropy_stats`: the entropy statistics over the valid tokens of the whole step batch (old-policy entropy), so
      they do not depend on the micro-batch split (`rlx.ops.aepo.entropy_stats`);
    - `rlx_log_denom` [bs], for a loss that takes `log_denom`: log Ê_q[q] over each uid group
      (`rlx.ops.gepo.group_log_denominator`);
    - `rlx_correct` [bs] and `rlx_nll_num_tokens` [bs], with the NLL term: its normaliser, the number of correct-sample tokens
      in the update mini-batch the row trains in (over all data-parallel ranks; `mini_batch_ids` with the actor's
      `mini_batch_size` = ppo_mini_batch_size x rollout.n rows and `dp_size`). The same in every row of a
      mini-batch, so its micro-batch losses add up to the paper's mean over that mini-batch's correct tokens.
    """
    import torch

    from rlx.ops.gepo import group_log_denominator

    out: dict[str, Any] = {}
    n = len(data)
    wanted = needs.loss_inputs
    if "entropy_stats" in wanted and "entropy" in data.keys():
        from rlx.ops.aepo import entropy_stats

        mean, std = entropy_stats(_padded(data, "entropy").double(), _padded(data, "response_mask"))
        out[ENTROPY_MEAN_FIELD] = torch.full((n,), float(mean), dtype=torch.float32)
        out[ENTROPY_STD_FIELD] = torch.full((n,), float(std), dtype=torch.float32)
    if "log_denom" in wanted:
        mask = _padded(data, "response_mask")
        out[LOG_DENOM_FIELD] = group_log_denominator(_padded(data, "old_log_probs"), mask, _uids(data)).float()
    if needs.nll_coef > 0:
        correct = _correct(data, n)
        lengths = _padded(data, "response_mask").sum(-1).double()
        ids = mini_batch_ids(n, mini_batch_size, dp_size)
        per_mini = torch.zeros(int(ids.max()) + 1 if n else 0, dtype=torch.float64)
        per_mini.index_add_(0, ids, lengths * correct.double())
        out[CORRECT_FIELD] = correct
        out[NLL_TOKENS_FIELD] = per_mini[ids].float()  # token counts: exact in float32 below 2**24
    return out


# ---- the actor loss (runs in the actor workers) ----------------------------------------------------------------------


class RlxActorLoss:
    """verl actor loss `fn(model_output, data, dp_group=None)`: verl's `ppo_loss` plus rlx's extras.

    Picklable (sent to the workers with `set_loss_fn`). Reads `entropy`, `rlx_log_denom`, `rlx_correct` and
    `rlx_nll_num_tokens` from the micro-batch TensorDict the worker fetched from the TransferQueue.
    """

    def __init__(self, config: Any, nll_coef: float = 0.0) -> None:
        self.config = config
        self.nll_coef = float(nll_coef)

    def __call__(self, model_output: Any, data: Any, dp_group: Any = None) -> tuple[Any, dict[str, Any]]:
        from verl.workers.utils.losses import ppo_loss
        from verl.workers.utils.padding import no_padding_2_padding

        from rlx.verl_plugin import loss_extras

        wanted = keyword_inputs("policy_loss", self.config.policy_loss.get("loss_mode", "vanilla"))
        extras: dict[str, Any] = {}
        log_prob = None
        if "entropy" in wanted:
            log_prob = no_padding_2_padding(model_output["log_probs"], data)
            if model_output.get("entropy", None) is not None:
                entropy = no_padding_2_padding(model_output["entropy"], data)
            elif "entropy" in data.keys():
                entropy = _to_width(_padded(data, "entropy"), log_prob.shape[1])
            else:
                entropy = None
            extras["entropy"] = entropy
        if "entropy_stats" in wanted and ENTROPY_MEAN_FIELD in data.keys():
            extras["entropy_stats"] = (
                _padded(data, ENTROPY_MEAN_FIELD).reshape(-1)[0],
                _padded(data, ENTROPY_STD_FIELD).reshape(-1)[0],
            )
        if "log_denom" in wanted and LOG_DENOM_FIELD in data.keys():
            extras["log_denom"] = data[LOG_DENOM_FIELD]
        with loss_extras(**extras):
            loss, metrics = ppo_loss(self.config, model_output, data, dp_group)
        if self.nll_coef > 0 and CORRECT_FIELD in data.keys():
            loss = loss + self.nll_coef * self._nll(model_output, data, log_prob, metrics)
        return loss, metrics

    def _nll(self, model_output: Any, data: Any, log_prob: Any, metrics: dict[str, Any]) -> Any:
        from verl.workers.utils.padding import no_padding_2_padding

        from rlx.ops.vapo import positive_nll

        if log_prob is None:
            log_prob = no_padding_2_padding(model_output["log_probs"], data)
        mask = _to_width(_padded(data, "response_mask"), log_prob.shape[1])
        info = self.config.global_batch_info or {}
        dp_size = info.get("dp_size", 1) or 1
        num_tokens = None
        if NLL_TOKENS_FIELD in data.keys() and len(data):
            # the mini-batch's correct-token count over all ranks, divided by dp size as verl's agg_loss divides
            # batch_num_tokens: the ranks' gradients are averaged, so their micro-batch losses add up to the mean
            num_tokens = float(_padded(data, NLL_TOKENS_FIELD).reshape(-1).max()) / dp_size
        nll, nll_metrics = positive_nll(log_prob, mask, data[CORRECT_FIELD], num_tokens=num_tokens)
        metrics.update(nll_metrics)
        return nll


# ---- the trainer extension (runs in the TaskRunner) -----------------------------------------------------------------


class RlxTrainerMixin:
    """Mixed in front of verl's v1 trainer class (see the module docstring, items 3 and 4)."""

    def _setup(self) -> None:
        super()._setup()  # type: ignore[misc]
        self._rlx_needs = rlx_needs(self.config)  # type: ignore[attr-defined]
        self._rlx_actor_layout(self._rlx_needs)  # fail before the first rollout on a layout rlx cannot follow
        if self._rlx_needs.actor_loss:
            self.actor_rollout_wg.set_loss_fn(build_actor_loss(self.config))  # type: ignore[attr-defined]
        if self._rlx_needs.gad_key is not None:
            from rlx.verl_algos.gad import GadCriticLoss

            self.critic_wg.set_loss_fn(GadCriticLoss())  # type: ignore[attr-defined]

    # ---- the critic as a discriminator (`Algorithm.teacher_option`; rlx.verl_algos.gad) ----

    def _compute_values(self, batch: Any, metrics: dict) -> Any:
        needs = getattr(self, "_rlx_needs", None) or rlx_needs(self.config)  # type: ignore[attr-defined]
        if needs.gad_key is None:
            return super()._compute_values(batch, metrics)  # type: ignore[misc]
        return self._rlx_gad_score(batch, metrics, needs.gad_key, needs.teacher_path or "algorithm.rlx")

    def _rlx_gad_score(self, batch: Any, metrics: dict, key: str, path: str) -> Any:
        """Score teacher/student pairs with D; the student's reward becomes sg(D(student)) (rlx.verl_algos.gad, 1-2)."""
        import ray
        import transfer_queue as tq
        from tensordict import TensorDict
        from verl.workers.utils.padding import response_from_nested, response_to_nested

        from rlx.errors import ConfigError
        from rlx.ops.gad import gad_token_rewards
        from rlx.verl_algos import gad

        data = tq.kv_batch_get(
            keys=batch.keys, partition_id=batch.partition_id, select_fields=[*gad.ROW_FIELDS, "rm_scores", key]
        )
        if key not in data.keys():
            raise ConfigError(
                f"the training data has no teacher-response column {key!r}",
                where=path,
                hint=f"add a {key!r} column to data.train_files, or set "
                f"++{path}=<the column that holds the teacher's answers>",
            )
        texts = data[key]
        texts = texts.tolist() if hasattr(texts, "tolist") else list(texts)
        pairs = gad.pair_rows(data, gad.teacher_ids(self.tokenizer, texts, key))  # type: ignore[attr-defined]
        keys = gad.pair_keys(batch.keys)
        meta = tq.kv_batch_put(keys=keys, partition_id=gad.PARTITION, fields=pairs)
        meta.extra_info = {"compute_loss": False, "temperature": self.config.actor_rollout_ref.rollout.temperature}  # type: ignore[attr-defined]
        ray.get(self.critic_wg.infer_batch(meta).futures)  # type: ignore[attr-defined]
        values = tq.kv_batch_get(keys=keys, partition_id=gad.PARTITION, select_fields=["values"])["values"]
        scores = gad.final_token_scores(values).detach().float()
        _, student = gad.split_pairs(scores, pairs[gad.ROLE_FIELD])
        mask = data["response_mask"]
        padded_mask = _padded(data, "response_mask")
        metrics["critic/task_score/mean"] = float(_padded(data, "rm_scores").sum(-1).mean())
        rewards = gad_token_rewards(student, padded_mask).to(_padded(data, "rm_scores").dtype)
        student_values = response_from_nested(gad._nested(gad._rows(values)[1::2]), mask)
        tq.kv_batch_put(
            keys=batch.keys,
            partition_id=batch.partition_id,
            fields=TensorDict(
                {"rm_scores": response_to_nested(rewards, mask), "values": student_values}, batch_size=len(batch)
            ),
        )
        self._rlx_gad_meta = meta
        return batch

    def _update_critic(self, batch: Any, metrics: dict) -> Any:
        meta = getattr(self, "_rlx_gad_meta", None)
        if meta is None:
            return super()._update_critic(batch, metrics)  # type: ignore[misc]
        import transfer_queue as tq
        from verl.utils.metric import reduce_metrics
        from verl.utils.py_functional import rename_dict

        from rlx.verl_algos import gad

        cfg = self.config  # type: ignore[attr-defined]
        rows = 2 * int(cfg.critic.ppo_mini_batch_size) * int(cfg.actor_rollout_ref.rollout.n)  # pairs: two rows each
        meta.extra_info = {
            "global_batch_size": rows,
            "mini_batch_size": rows,
            "epochs": cfg.critic.ppo_epochs,
            "seed": cfg.critic.data_loader_seed,
            "dataloader_kwargs": {"shuffle": False},  # a shuffle would split the (teacher, student) pairs
            "force_group_size": 2,  # micro-batches (dynamic or fixed) keep each pair whole
            "temperature": cfg.actor_rollout_ref.rollout.temperature,
        }
        try:
            output = self.critic_wg.train_mini_batch(meta).get()  # type: ignore[attr-defined]
        finally:
            self._rlx_gad_meta = None
            tq.kv_clear(keys=meta.keys, partition_id=gad.PARTITION)
        output = rename_dict(output["metrics"], "critic/")
        if "critic/mfu" in output:
            output["perf/mfu/critic"] = output.pop("critic/mfu")
        metrics.update(reduce_metrics(output))
        return batch

    def _compute_advantage(self, batch: Any, metrics: dict) -> Any:
        import transfer_queue as tq
        from tensordict import TensorDict

        from rlx import verl_plugin

        needs = getattr(self, "_rlx_needs", None) or rlx_needs(self.config)  # type: ignore[attr-defined]
        if not needs.batch_fields:
            return super()._compute_advantage(batch, metrics)  # type: ignore[misc]
        fields = ["uid", "response_mask", "rm_scores", "old_log_probs", "values", "extra_fields", *REWARD_EXTRA_KEYS]
        if {"entropy", "entropy_stats"} & needs.loss_inputs:
            fields.append("entropy")
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        verl_plugin.estimator_metrics.clear()
        with verl_plugin.estimator_extras(**estimator_inputs(data, needs, batch_keys=batch.keys)):
            batch = super()._compute_advantage(batch, metrics)  # type: ignore[misc]
        metrics.update(verl_plugin.estimator_metrics)
        mini, dp = self._rlx_actor_layout(needs)
        extra = actor_fields(data, needs, mini_batch_size=mini, dp_size=dp)
        if extra:
            batch = tq.kv_batch_put(
                keys=batch.keys, partition_id=batch.partition_id, fields=TensorDict(extra, batch_size=len(batch))
            )
        return batch

    def _rlx_actor_layout(self, needs: RlxNeeds) -> tuple[int | None, int]:
        """(global update mini-batch rows, actor dp size) for the NLL term's per-mini-batch normaliser."""
        if needs.nll_coef <= 0:
            return None, 1
        from rlx.errors import ConfigError

        actor = self.config.actor_rollout_ref.actor  # type: ignore[attr-defined]
        if bool(actor.get("shuffle", False)):
            raise ConfigError(
                f"the positive-example NLL term ({needs.nll_path}) is normalised per update mini-batch, which "
                "rlx can only know when verl's actor does not shuffle the batch",
                where=f"{A_SHUFFLE}=true",
                hint=f"set {A_SHUFFLE}=false (verl's default)",
            )
        mini = int(actor.ppo_mini_batch_size) * int(self.config.actor_rollout_ref.rollout.n)  # type: ignore[attr-defined]
        wg = getattr(self, "actor_rollout_wg", None)
        dp = 1
        if wg is not None and hasattr(wg, "_dispatch_info"):  # as verl's own _balance_batch reads the actor dp size
            if "actor" not in wg._dispatch_info:
                wg._dispatch_info["actor"] = wg._query_dispatch_info("actor")
            dp = max(wg._dispatch_info["actor"]) + 1
        return mini, dp


A_SHUFFLE = "actor_rollout_ref.actor.shuffle"


def build_actor_loss(config: Any) -> RlxActorLoss:
    """`RlxActorLoss` for the actor section of a resolved verl config (same dataclass verl's worker builds)."""
    from verl.utils.config import omega_conf_to_dataclass

    from rlx.errors import ConfigError

    if _get(config, "distillation.enabled", False):
        raise ConfigError(
            "rlx's actor loss cannot be combined with verl's distillation loss",
            where="distillation.enabled",
            hint="set distillation.enabled=false for rlx algorithms",
        )
    actor_cfg = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    return RlxActorLoss(actor_cfg, rlx_needs(config).nll_coef)


def install_trainer(config: Any) -> str:
    """Register `rlx_<mode>` (RlxTrainerMixin over verl's trainer for `trainer.v1.trainer_mode`) and select it."""
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, get_trainer_cls, register_trainer

    mode = str(config.trainer.v1.trainer_mode)
    if not mode.startswith(TRAINER_PREFIX):
        name = TRAINER_PREFIX + mode
        if name not in TRAINER_REGISTRY:
            base = get_trainer_cls(mode)
            register_trainer(name)(type(f"Rlx{base.__name__}", (RlxTrainerMixin, base), {}))
        config.trainer.v1.trainer_mode = name
        mode = name
    return mode


def task_runner_class() -> Any:
    """A Ray actor class: verl's TaskRunnerV1 whose `run` installs the rlx trainer first."""
    import ray
    from verl.trainer.main_ppo import TaskRunnerV1

    base = TaskRunnerV1.__ray_metadata__.modified_class  # type: ignore[attr-defined]  # set by @ray.remote at runtime

    class RlxTaskRunnerV1(base):  # type: ignore[misc, valid-type]
        def run(self, config: Any) -> Any:
            from rlx.verl_plugin import ensure_registered

            ensure_registered()
            install_trainer(config)
            return super().run(config)

    return ray.remote(RlxTaskRunnerV1)


# ---- process entry ----------------------------------------------------------------------------------------------


def export_algo_config(config: Any) -> str:
    """Put `algorithm.rlx` as JSON into `RLX_ALGO_CFG` here and in Ray's runtime env; returns the JSON."""
    from omegaconf import OmegaConf

    from rlx.ops.options import ENV_VAR

    text = json.dumps(rlx_section(config), sort_keys=True)
    os.environ[ENV_VAR] = text
    # force_add: verl's ray_init.runtime_env is a struct node without an env_vars key
    OmegaConf.update(config, f"ray_kwargs.ray_init.runtime_env.env_vars.{ENV_VAR}", text, force_add=True)
    return text


def run(config: Any) -> None:
    """What `main` does after Hydra composed the config (mirrors verl's `main_ppo.main` with rlx's checks)."""
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    from rlx.errors import ConfigError
    from rlx.verl_plugin import ensure_registered

    ensure_registered()
    if not _get(config, "trainer.use_v1", True):
        raise ConfigError(
            "rlx's verl entrypoint extends verl's v1 trainer only",
            where="trainer.use_v1",
            hint="set trainer.use_v1=true",
        )
    auto_set_device(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    export_algo_config(config)
    run_ppo(config, task_runner_class=task_runner_class())


def _verl_config_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        from rlx.errors import ConfigError

        raise ConfigError("verl is not installed in this interpreter", hint="pip install verl==0.9.1")
    return os.path.join(list(spec.submodule_search_locations)[0], "trainer", "config")


def main() -> None:
    """`python -m rlx.verl_entry <hydra overrides>`: compose verl's `ppo_trainer` config and run it with rlx's hooks."""
    import sys

    import hydra

    from rlx.errors import RlxError

    def task(config: Any) -> None:
        try:
            run(config)
        except RlxError as exc:  # Hydra would print a traceback and exit 1; rlx prints its error and exit code
            print(exc.render(), file=sys.stderr)
            sys.exit(exc.exit_code)

    hydra.main(config_path=_verl_config_dir(), config_name="ppo_trainer", version_base=None)(task)()


if __name__ == "__main__":
    main()
