"""Config diff, algorithm derivation and status reconciliation of `rlx compare runs` (pure logic)."""

from __future__ import annotations

from rlx.compare.core import algorithm_of, effective_status
from rlx.compare.diff import config_diff, dotted, section_of
from rlx.presets import load
from rlx.track.reads import RunInfo


def test_dotted_and_sections():
    assert dotted("actor_rollout_ref/actor/policy_loss/loss_mode") == "actor_rollout_ref.actor.policy_loss.loss_mode"
    assert dotted("rlx/preset") == "rlx/preset"
    assert section_of("actor_rollout_ref.actor.clip_ratio_low") == "actor_rollout_ref.actor"
    assert section_of("algorithm.adv_estimator") == "algorithm"
    assert section_of("rlx/preset") == "rlx"


def test_diff_lists_exactly_the_differing_keys_grouped_with_provenance():
    base = {"data/train_batch_size": "256", "algorithm/adv_estimator": "grpo", "trainer/logger/0": "mlflow",
            "actor_rollout_ref/actor/clip_ratio_low": "0.2", "actor_rollout_ref/rollout/n": "8"}
    a = {**base, "actor_rollout_ref/actor/clip_ratio_low": "0.0003", "trainer/logger/1": "console"}
    b = dict(base)
    prov = {"a": [{"key": "actor_rollout_ref.actor.clip_ratio_low", "value": 3e-4, "source": "preset gspo",
                   "reason": "paper", "where": "gspo.yaml:5"},
                  {"key": "trainer.logger", "source": "command line"}]}
    d = config_diff(["a", "b", "c"], {"a": a, "b": b, "c": {}}, prov)
    assert d.keys == ["actor_rollout_ref.actor.clip_ratio_low", "trainer.logger.1"]
    assert d.without_params == ["c"]
    assert d.identical == 4
    e = d.entries[0]
    assert e.values == {"a": "0.0003", "b": "0.2"}
    assert e.provenance["a"]["source"] == "preset gspo" and e.provenance["a"]["where"] == "gspo.yaml:5"
    assert "b" not in e.provenance  # no artifact: unknown, not "verl default"
    assert d.entries[1].provenance["a"]["source"] == "command line"  # a list is recorded whole
    assert d.entries[1].values["b"] is None
    assert list(d.sections()) == ["actor_rollout_ref.actor", "trainer"]


def test_diff_with_store_computed_keys_counts_identical():
    d = config_diff(["a", "b"], {"a": {"x/y": "1"}, "b": {"x/y": "2"}}, param_counts={"a": 900, "b": 900},
                    total_keys=900)
    assert d.keys == ["x.y"] and d.identical == 899 and d.without_params == []


def _params(preset: str) -> dict[str, str]:
    return {k.replace(".", "/"): str(s.value) for k, (_, s) in load(preset).effective().items()}


def test_algorithm_from_tag_wins():
    assert algorithm_of({"rlx.algo": "gspo"}, _params("grpo")) == ("gspo", "tag")


def test_algorithm_derived_from_verl_params():
    assert algorithm_of({}, _params("gspo")) == ("gspo", "params")
    # grpo, drgrpo and dapo share adv_estimator=grpo + loss_mode=vanilla: the presets' keys break the tie.
    assert algorithm_of({}, _params("drgrpo")) == ("drgrpo", "params")
    assert algorithm_of({}, _params("dapo")) == ("dapo", "params")
    assert algorithm_of({}, _params("grpo")) == ("grpo", "params")
    assert algorithm_of({}, {"algorithm/adv_estimator": "gae"})[0] == "ppo"  # loss_mode absent: verl's vanilla
    assert algorithm_of({}, {"algorithm/adv_estimator": "mystery"}) == ("mystery/vanilla", "params")
    assert algorithm_of({}, {}) == (None, "")


def _info(status: str, **tags: str) -> RunInfo:
    return RunInfo("0" * 32, "r", "e", status, 0, None, "", dict(tags))


def test_status_prefers_rlx_tag():
    assert effective_status(_info("FINISHED", **{"rlx.job_status": "FAILED"})) == "FAILED"
    assert effective_status(_info("RUNNING", **{"rlx.job_status": "stopped"})) == "STOPPED"
    assert effective_status(_info("RUNNING")) == "RUNNING?"  # MLflow alone cannot tell live from killed
    assert effective_status(_info("FINISHED")) == "FINISHED"
