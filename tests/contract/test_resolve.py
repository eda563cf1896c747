"""Resolution against verl's real packaged config: layers, provenance, and a launch command verl's parser accepts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlx import verl_keys as K
from rlx.errors import ConfigError
from rlx.resolve import compose_verl, flatten, resolve, verl_defaults_container
from rlx.resolve.overrides import parse


def test_gspo_values_from_the_issue():
    r = resolve("gspo")
    c = r.container()
    assert c["algorithm"]["adv_estimator"] == "grpo"
    actor = c["actor_rollout_ref"]["actor"]
    assert actor["policy_loss"]["loss_mode"] == "gspo"
    assert actor["clip_ratio_low"] == 0.0003 and actor["clip_ratio_high"] == 0.0004
    assert actor["loss_agg_mode"] == "seq-mean-token-mean"
    assert actor["use_kl_loss"] is False
    assert actor["rollout_n"] == c["actor_rollout_ref"]["rollout"]["n"]  # verl's interpolation still resolves


def test_provenance_names_the_layer_that_set_each_key(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "algo: gspo\nmodel: /models/qwen  # the 3B instruct model\ndata:\n  batch_size: 128\n"
        "overrides:\n  actor_rollout_ref.rollout.n: 8   # cheaper groups\n"
    )
    r = resolve(experiment=exp, overrides=["actor_rollout_ref.rollout.n=12"])
    changed = {c.key: c for c in r.changed()}
    assert changed[K.LOSS_MODE].source.label == "preset gspo"
    assert changed[K.ADV_ESTIMATOR].source.label == "preset grpo (via gspo)"
    assert changed[K.MODEL_PATH].source.label == "experiment exp.yaml"
    assert changed[K.MODEL_PATH].source.reason == "the 3B instruct model"
    assert changed[K.MODEL_PATH].source.where == f"{exp}:2"
    assert changed[K.TRAIN_BATCH].value == 128
    assert changed[K.ROLLOUT_N].value == 12 and changed[K.ROLLOUT_N].source.label == "command line"
    assert changed[K.CLIP_LOW].default == 0.2
    assert "paper v2 section 5.1" in changed[K.CLIP_LOW].source.reason


def test_changed_lists_exactly_the_non_default_leaves():
    r = resolve("grpo")
    base = flatten(verl_defaults_container())
    for c in r.changed():
        assert base.get(c.key, "<absent>") != c.value
    keys = {c.key for c in r.changed()}
    assert K.ADV_ESTIMATOR in keys and K.CLIP_LOW not in keys  # grpo keeps verl's 0.2


def test_add_force_and_delete_overrides():
    r = resolve("grpo", overrides=["+algorithm.rlx.note=hi", "++trainer.nnodes=2", "~trainer.val_before_train"])
    assert r.get("algorithm.rlx.note") == "hi"
    assert r.get(K.NNODES) == 2
    assert r.get("trainer.val_before_train", "gone") == "gone"
    cmd = r.override_list()
    assert "+algorithm.rlx.note=hi" in cmd and "~trainer.val_before_train" in cmd and "trainer.nnodes=2" in cmd


@pytest.mark.parametrize(
    "overrides,message,hint",
    [
        (
            ["actor_rollout_ref.actor.clip_ratoi=0.2"],
            "unknown config key 'actor_rollout_ref.actor.clip_ratoi'",
            "did you mean `actor_rollout_ref.actor.clip_ratio=0.2`?",
        ),
        (["actor_rollout_ref.actorr.ppo_epochs=2"], "unknown config key", "`actor_rollout_ref.actor.ppo_epochs=2`"),
        (["+algorithm.adv_estimator=grpo"], "adds a key that already exists", "drop the `+`"),
        (["~trainer.nope"], "deletes a key that does not exist", ""),
    ],
)
def test_bad_overrides_get_clear_errors(overrides, message, hint):
    with pytest.raises(ConfigError) as e:
        resolve("grpo", overrides=overrides)
    assert message in e.value.message
    assert hint in (e.value.hint or "")
    assert e.value.where == f"override '{overrides[0]}'"


def test_launch_command_round_trips_through_hydra_and_reproduces_the_config():
    """The printed command, parsed by Hydra and applied to verl's defaults, gives the same config."""
    r = resolve("dapo", overrides=["data.train_files=[/a.parquet,/b.parquet]", "trainer.experiment_name='my run'"])
    argv = r.command()
    assert argv[1:3] == ["-m", "verl.trainer.main_ppo"]
    again = resolve(verl_only=True, overrides=argv[3:])
    assert again.container() == r.container()
    assert all(ov.text for ov in parse(argv[3:]))


def test_env_interpolations_are_never_resolved_into_outputs(monkeypatch):
    monkeypatch.setenv("RLX_TEST_SECRET", "sk-canary-123")
    r = resolve("grpo", overrides=["+trainer.wandb_key=${oc.env:RLX_TEST_SECRET}"])
    text = json.dumps(r.container()) + r.to_yaml() + r.command_line()
    assert "sk-canary-123" not in text
    assert "${oc.env:RLX_TEST_SECRET}" in r.to_yaml()


def test_cached_defaults_equal_a_fresh_hydra_compose():
    assert verl_defaults_container() == compose_verl()


def test_resolution_does_not_import_verl_or_torch():
    code = (
        "import sys; from rlx.resolve import resolve; resolve('gspo').container(); "
        "print(sorted(m for m in ('verl','torch','ray','mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
