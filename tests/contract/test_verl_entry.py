"""Data plumbing of rlx's verl entrypoint on CPU, with verl 0.9.1's own batch structures.

- the advantage side: a TensorDict shaped like `tq.kv_batch_get` returns it (nested response fields, NonTensorStack
  uids and agent-loop `extra_fields`) -> `estimator_inputs` -> verl's own `DataProto` +
  `compute_advantage_for_multi_trajectories`, exactly the calls verl's `_compute_advantage` makes;
- the actor side: `RlxActorLoss` around verl's `ppo_loss` on a no-padding micro-batch like the FSDP engine builds;
- the trainer: `install_trainer` registers `rlx_<mode>` over verl's trainer class; the Ray TaskRunner subclass.

The same override against a real TransferQueue is in `test_verl_entry_tq.py` (integration).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("verl")

from omegaconf import OmegaConf  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from verl.protocol import DataProto  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402
from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories  # noqa: E402
from verl.utils import tensordict_utils as tu  # noqa: E402
from verl.utils.tensordict_utils import list_of_dict_to_tensordict  # noqa: E402
from verl.workers.config import FSDPActorConfig  # noqa: E402
from verl.workers.config.actor import PolicyLossConfig  # noqa: E402
from verl.workers.utils.losses import ppo_loss  # noqa: E402

from rlx import verl_entry as E  # noqa: E402
from rlx import verl_plugin  # noqa: E402
from rlx.ops.gepo import group_log_denominator  # noqa: E402
from rlx.resolve import resolve  # noqa: E402

LENGTHS = [3, 5, 2, 4]
UIDS = ["p0", "p0", "p0", "p0"]


def tq_rows(scores, extras=None, values=True, old=True):
    """Rows as verl's agent loop puts them into the TransferQueue (one dict per trajectory)."""
    gen = torch.Generator().manual_seed(0)
    rows = []
    for i, length in enumerate(LENGTHS):
        rm = torch.zeros(length)
        rm[-1] = scores[i]
        row = {"uid": UIDS[i], "response_mask": torch.ones(length, dtype=torch.int64), "rm_scores": rm,
               "extra_fields": {"reward_extra_info": dict((extras or [{}] * 4)[i])}}
        if values:
            row["values"] = torch.rand(length, generator=gen)
        if old:
            row["old_log_probs"] = -torch.rand(length, generator=gen)
        rows.append(row)
    return list_of_dict_to_tensordict(rows)


def verl_advantage(data: TensorDict, config) -> DataProto:
    """What verl's v1 `_compute_advantage` does with the fetched fields (steps 1 and 3, no KL in reward)."""
    proto = DataProto(batch=data.select(*[k for k in ("response_mask", "rm_scores", "values") if k in data.keys()])
                      .to_padded_tensor())
    proto.batch["token_level_rewards"] = proto.batch["rm_scores"]
    proto.non_tensor_batch["uid"] = np.array(list(data["uid"]), dtype=object)
    keys = [f"{u}_{i}_0" for i, u in enumerate(UIDS)]
    return compute_advantage_for_multi_trajectories(
        proto, batch_keys=keys, adv_estimator=config.algorithm.adv_estimator, gamma=config.algorithm.gamma,
        lam=config.algorithm.lam, num_repeat=4, norm_adv_by_std_in_grpo=True, config=config.algorithm)


@pytest.fixture(scope="module")
def aspo_config():
    return resolve("aspo").config


def test_needs_follow_the_presets():
    assert E.rlx_needs(resolve("aspo").config) == E.RlxNeeds("rlx_aspo", None, 0.0)
    assert E.rlx_needs(resolve("vapo").config) == E.RlxNeeds("rlx_vapo", None, 0.1)
    assert E.rlx_needs(resolve("gepo").config).loss == "rlx_gepo"
    aepo = E.rlx_needs(resolve("aepo").config)
    assert aepo.loss == "rlx_aepo" and aepo.actor_loss and aepo.estimator is None
    assert not E.rlx_needs(resolve("grpo").config).active


def test_reward_extras_from_agent_loop_extra_fields_and_top_level_fields():
    extras = [{"first_code_pos": 10, "used_code": True}, {"first_code_pos": 50, "used_code": True},
              {"first_code_pos": 90, "used_code": True}, {"used_code": False}]
    data = tq_rows([1, 1, 1, 0], extras)
    got = E.reward_extras(data, 4)
    assert got["first_code_pos"].tolist() == [10, 50, 90, -1]  # missing -> -1 (no code)
    assert got["used_code"].tolist() == [True, True, True, False]
    # verl's colocated reward path writes reward_extra_info keys as top-level fields: those win
    data2 = tu.get_tensordict({"first_code_pos": [5, 6, 7, 8], "used_code": [True, False, True, False],
                               "extra_fields": [{"reward_extra_info": {"first_code_pos": 1}}] * 4})
    got2 = E.reward_extras(data2, 4)
    assert got2["first_code_pos"].tolist() == [5, 6, 7, 8] and got2["used_code"].tolist() == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="has 4 values for 3 samples"):
        E.reward_extras(data2, 3)


def test_aspo_through_verl_compute_advantage_with_fetched_extras(aspo_config):
    extras = [{"first_code_pos": 10, "used_code": True, "response_chars": 100},
              {"first_code_pos": 50, "used_code": True, "response_chars": 200},
              {"first_code_pos": 90, "used_code": True, "response_chars": 300},
              {"first_code_pos": -1, "used_code": False, "response_chars": 50}]
    data = tq_rows([1, 1, 1, 0], extras)
    needs = E.rlx_needs(aspo_config)
    inputs = E.estimator_inputs(data, needs)
    assert set(inputs) >= {"first_code_pos", "used_code", "lengths", "values"}
    with verl_plugin.estimator_extras(**inputs):
        out = verl_advantage(data, aspo_config)
    mask = out.batch["response_mask"]
    adv = out.batch["advantages"]
    first = adv[torch.arange(4), 0]
    assert torch.allclose(first, torch.tensor([0.85, 0.5, 0.15, -1.5]), atol=1e-5)  # docs vector 4 (chars)
    assert torch.equal(adv * (1 - mask), torch.zeros_like(adv))
    assert verl_plugin.estimator_metrics["aspo/code_usage_ratio"] == pytest.approx(0.75)
    assert verl_plugin.estimator_metrics["aspo/first_code_pos_mean"] == pytest.approx(50.0)


def test_vapo_gets_critic_values_and_correct_flags_for_the_actor():
    config = resolve("vapo").config
    data = tq_rows([0, 1, 0, 1])
    needs = E.rlx_needs(config)
    inputs = E.estimator_inputs(data, needs)
    values = data["values"].to_padded_tensor(0.0)
    assert torch.equal(inputs["values"], values)
    with verl_plugin.estimator_extras(**inputs):
        out = verl_advantage(data, config)
    mask = out.batch["response_mask"].float()
    rewards = out.batch["token_level_rewards"]
    # gamma = 1, lambda_critic = 1: value targets are the Monte-Carlo return-to-go
    mc = torch.flip(torch.cumsum(torch.flip(rewards * mask, [1]), 1), [1])
    assert torch.allclose(out.batch["returns"] * mask, mc * mask, atol=1e-6)
    fields = E.actor_fields(data, needs)
    assert fields[E.CORRECT_FIELD].tolist() == [0.0, 1.0, 0.0, 1.0]
    # one update mini-batch (no layout given): the count of its correct-sample tokens, in every row
    assert fields[E.NLL_TOKENS_FIELD].tolist() == [float(LENGTHS[1] + LENGTHS[3])] * 4


def test_gepo_denominator_field_is_per_uid():
    config = resolve("gepo").config
    global UIDS
    saved, UIDS = UIDS, ["a", "b", "a", "b"]
    try:
        data = tq_rows([1, 0, 0, 1], values=False)
    finally:
        UIDS = saved
    fields = E.actor_fields(data, E.rlx_needs(config))
    old = data["old_log_probs"].to_padded_tensor(0.0)
    mask = data["response_mask"].to_padded_tensor(0)
    expect = group_log_denominator(old, mask, np.array(["a", "b", "a", "b"], dtype=object))
    assert torch.allclose(fields[E.LOG_DENOM_FIELD], expect)
    assert fields[E.LOG_DENOM_FIELD][0] == fields[E.LOG_DENOM_FIELD][2] and fields[E.LOG_DENOM_FIELD][0] != fields[E.LOG_DENOM_FIELD][1]


# ---- actor side -----------------------------------------------------------------------------------------------------

PROMPT = [2, 3, 1, 2]


def micro_batch(extra: dict | None = None):
    """A no-padding micro-batch as verl's FSDP engine hands it to the loss, plus the model's nested log-probs."""
    gen = torch.Generator().manual_seed(1)
    tensors = {"prompts": [], "responses": [], "response_mask": [], "old_log_probs": [], "advantages": [],
               "entropy": []}
    log_probs, entropy_now = [], []
    for p, r, a in zip(PROMPT, LENGTHS, [1.0, -1.0, 0.5, -0.5], strict=True):
        tensors["prompts"].append(torch.ones(p, dtype=torch.int64))
        tensors["responses"].append(torch.ones(r, dtype=torch.int64))
        tensors["response_mask"].append(torch.ones(r, dtype=torch.int64))
        old = -torch.rand(r, generator=gen)
        tensors["old_log_probs"].append(old)
        tensors["advantages"].append(torch.full((r,), a))
        tensors["entropy"].append(torch.rand(r, generator=gen))
        full = -torch.rand(p + r, generator=gen)
        full[p - 1: p + r - 1] = old + 0.3 * torch.randn(r, generator=gen)  # log-probs of response tokens
        log_probs.append(full)
        entropy_now.append(torch.rand(p + r, generator=gen))
    nested = {k: torch.nested.as_nested_tensor(v, layout=torch.jagged) for k, v in tensors.items()}
    nested.update(extra or {})
    data = tu.get_tensordict(nested, non_tensor_dict={"dp_size": 1, "batch_num_tokens": sum(LENGTHS),
                                                      "global_batch_size": 4})
    model_output = {"log_probs": torch.nested.as_nested_tensor(log_probs, layout=torch.jagged),
                    "entropy": torch.nested.as_nested_tensor(entropy_now, layout=torch.jagged)}
    return data, model_output


def padded(data, key):
    return data[key].to_padded_tensor(0.0)


def actor_config(mode="vanilla"):
    return FSDPActorConfig(strategy="fsdp", rollout_n=4, ppo_mini_batch_size=2, ppo_micro_batch_size_per_gpu=2,
                           clip_ratio_low=0.2, clip_ratio_high=0.28, loss_agg_mode="token-mean",
                           policy_loss=PolicyLossConfig(loss_mode=mode))


def response_log_probs(model_output):
    from verl.workers.utils.padding import no_padding_2_padding

    return no_padding_2_padding(model_output["log_probs"], micro_batch()[0])


def test_actor_loss_passes_gepo_denominators_to_the_loss():
    log_denom = torch.tensor([-0.4, -0.6, -0.4, -0.6])
    data, out = micro_batch({E.LOG_DENOM_FIELD: log_denom})
    cfg = actor_config("rlx_gepo")
    loss, metrics = E.RlxActorLoss(cfg)(out, data)
    direct, _ = core_algos.get_policy_loss_fn("rlx_gepo")(
        old_log_prob=padded(data, "old_log_probs"), log_prob=response_log_probs(out),
        advantages=padded(data, "advantages"), response_mask=padded(data, "response_mask").bool(),
        loss_agg_mode="token-mean", config=cfg, log_denom=log_denom)
    assert loss.item() == pytest.approx(direct.item())
    assert _metric(metrics, "actor/gepo_denominator_fallback") == 0.0
    plain, plain_metrics = ppo_loss(actor_config("rlx_gepo"), out, micro_batch()[0])  # verl alone: fallback
    assert _metric(plain_metrics, "actor/gepo_denominator_fallback") == 1.0
    assert plain.item() != pytest.approx(loss.item())


def _metric(metrics, key):
    value = metrics[key]
    value = getattr(value, "values", value)  # verl wraps loss metrics in Metric(values=[...])
    return float(value[0] if isinstance(value, list) else value)


def test_actor_loss_gives_aepo_current_entropy_else_old_entropy():
    cfg = actor_config("rlx_aepo")
    data, out = micro_batch()
    with_current, _ = E.RlxActorLoss(cfg)(out, data)
    from verl.workers.utils.padding import no_padding_2_padding

    direct_now, _ = core_algos.get_policy_loss_fn("rlx_aepo")(
        old_log_prob=padded(data, "old_log_probs"), log_prob=response_log_probs(out),
        advantages=padded(data, "advantages"), response_mask=padded(data, "response_mask").bool(),
        config=cfg, entropy=no_padding_2_padding(out["entropy"], data))
    assert with_current.item() == pytest.approx(direct_now.item())
    out_no_entropy = {"log_probs": out["log_probs"]}
    with_old, _ = E.RlxActorLoss(cfg)(out_no_entropy, data)
    direct_old, _ = core_algos.get_policy_loss_fn("rlx_aepo")(
        old_log_prob=padded(data, "old_log_probs"), log_prob=response_log_probs(out),
        advantages=padded(data, "advantages"), response_mask=padded(data, "response_mask").bool(),
        config=cfg, entropy=padded(data, "entropy"))
    assert with_old.item() == pytest.approx(direct_old.item())
    assert with_old.item() != pytest.approx(with_current.item())


def test_actor_loss_adds_vapo_nll_normalised_by_global_correct_tokens():
    correct = torch.tensor([0.0, 1.0, 0.0, 1.0])
    tokens = float(LENGTHS[1] + LENGTHS[3])  # the micro-batch is the whole mini-batch here
    data, out = micro_batch({E.CORRECT_FIELD: correct, E.NLL_TOKENS_FIELD: torch.full((4,), tokens)})
    cfg = actor_config("vanilla")
    loss, metrics = E.RlxActorLoss(cfg, nll_coef=0.1)(out, data)
    base, _ = ppo_loss(actor_config("vanilla"), out, micro_batch()[0])
    lp = response_log_probs(out)
    mask = padded(data, "response_mask").float()
    nll = -(lp * mask * correct.unsqueeze(-1)).sum() / (LENGTHS[1] + LENGTHS[3])
    assert loss.item() == pytest.approx(base.item() + 0.1 * nll.item(), rel=1e-5)
    assert _metric(metrics, "actor/vapo_nll") == pytest.approx(nll.item(), rel=1e-5)


# ---- trainer and task runner ----------------------------------------------------------------------------------------

def test_install_trainer_registers_the_rlx_subclass_and_switches_mode():
    from verl.trainer.ppo.v1.trainer_base import get_trainer_cls
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    config = OmegaConf.create({"trainer": {"v1": {"trainer_mode": "sync"}}})
    assert E.install_trainer(config) == "rlx_sync"
    cls = get_trainer_cls("rlx_sync")
    assert issubclass(cls, PPOTrainerSync) and issubclass(cls, E.RlxTrainerMixin)
    assert cls._compute_advantage is E.RlxTrainerMixin._compute_advantage
    assert E.install_trainer(config) == "rlx_sync"  # idempotent (a restarted TaskRunner)
    assert E.install_trainer(OmegaConf.create({"trainer": {"v1": {"trainer_mode": "sync"}}})) == "rlx_sync"


def test_task_runner_is_verls_with_rlx_run():
    runner = E.task_runner_class()
    cls = runner.__ray_metadata__.modified_class
    from verl.trainer.main_ppo import TaskRunnerV1

    assert issubclass(cls, TaskRunnerV1.__ray_metadata__.modified_class)
    assert cls.run is not TaskRunnerV1.__ray_metadata__.modified_class.run


def test_export_algo_config_reaches_workers_env(monkeypatch):
    monkeypatch.delenv("RLX_ALGO_CFG", raising=False)
    config = resolve("aspo").config
    import json

    text = E.export_algo_config(config)
    assert json.loads(text)["aspo"]["delta"] == -2.0
    assert config.ray_kwargs.ray_init.runtime_env.env_vars["RLX_ALGO_CFG"] == text
    assert verl_plugin.algo_options("aspo")["k"] == 0.7


@pytest.mark.parametrize(("algo", "mode", "nll"), [("aepo", "rlx_aepo", 0.0), ("gepo", "rlx_gepo", 0.0),
                                                   ("vapo", "vanilla", 0.1)])
def test_actor_loss_builds_from_the_presets_and_pickles_for_the_workers(algo, mode, nll):
    import pickle

    config = OmegaConf.create(OmegaConf.to_container(resolve(algo).config, resolve=True))
    loss = pickle.loads(pickle.dumps(E.build_actor_loss(config)))  # set_loss_fn ships it to every actor worker
    assert isinstance(loss.config, FSDPActorConfig)
    assert loss.config.policy_loss.loss_mode == mode and loss.nll_coef == nll
