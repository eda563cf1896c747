"""Smoke tasks, tokenizer, sizes and reward loading: pure logic, no torch training."""

from __future__ import annotations

import pandas as pd
import pytest

from rlx.errors import ConfigError, UsageError
from rlx.smoke.model import CharTokenizer
from rlx.smoke.tasks import TASKS, code_markers, compute_score, get_task, prompt_text


def test_tokenizer_round_trip_and_eos_stops_decoding():
    tok = CharTokenizer()
    ids = tok.encode("12=#")
    assert tok.decode(ids) == "12=#"
    assert tok.decode([*tok.encode("12"), tok.eos_id, *tok.encode("9")]) == "12"
    assert tok.vocab_size == 16
    with pytest.raises(ValueError, match="alphabet"):
        tok.encode("x")


@pytest.mark.parametrize(("source", "solution", "truth", "score", "acc"), [
    ("rlx_smoke/copy", "123", "123", 1.0, 1.0),
    ("rlx_smoke/copy", "129", "123", 2 / 3, 2 / 3),
    ("rlx_smoke/copy", "", "123", 0.0, 0.0),
    ("rlx_smoke/reverse", "321", "321", 1.0, 1.0),
    ("rlx_smoke/code", "1#23", "123", 1.0, 1.0),
    ("rlx_smoke/code", "123", "123", 0.5, 1.0),  # right, but never called code: half the reward
])
def test_compute_score_is_the_fraction_of_positions_right(source, solution, truth, score, acc):
    out = compute_score(source, solution, truth, None)
    assert out["score"] == pytest.approx(score)
    assert out["acc"] == pytest.approx(acc)
    assert out["correct"] is (acc == 1.0)


def test_code_markers_give_the_token_index_of_the_first_call():
    assert code_markers("1#2#3") == {"used_code": True, "first_code_pos": 1}
    assert code_markers("#123")["first_code_pos"] == 0
    assert code_markers("123") == {"used_code": False, "first_code_pos": -1}
    assert compute_score("rlx_smoke/code", "12#3", "123")["first_code_pos"] == 2


def test_dataset_is_in_verls_format(tmp_path):
    task = get_task("reverse")
    df = pd.read_parquet(task.write_parquet(tmp_path / "train.parquet"))
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info"} <= set(df.columns)
    assert len(df) == 1000
    row = df.iloc[123]
    assert row["data_source"] == "rlx_smoke/reverse"
    assert prompt_text(row["prompt"]) == "123="
    assert row["reward_model"]["ground_truth"] == "321"


def test_unknown_task_is_a_usage_error_with_a_suggestion():
    with pytest.raises(UsageError) as e:
        get_task("revers")
    assert "reverse" in e.value.hint and e.value.where == "--task"
    assert set(TASKS) == {"copy", "reverse", "code"}


def test_custom_reward_function_is_loaded_from_the_current_and_the_legacy_key(tmp_path):
    from omegaconf import OmegaConf

    from rlx.smoke.setup import _getter, _reward_fn

    f = tmp_path / "my_reward.py"
    f.write_text("def judge(data_source, solution_str, ground_truth, extra_info=None, bonus=0.0):\n"
                 "    return float(solution_str == ground_truth) + bonus\n")
    current = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": str(f), "name": "judge", "reward_kwargs": {"bonus": 0.5}}}, "custom_reward_function": {
        "path": None, "name": None}})
    fn, label = _reward_fn(_getter(current))
    assert label.endswith(":judge")
    assert fn("x", "12", "12", None) == 1.5
    legacy = OmegaConf.create({"reward": {"custom_reward_function": {"path": None, "name": "compute_score"}},
                               "custom_reward_function": {"path": str(f), "name": "judge"}})
    assert _reward_fn(_getter(legacy))[0]("x", "1", "2", None) == 0.0
    missing = OmegaConf.create({"reward": {"custom_reward_function": {"path": str(tmp_path / "no.py"), "name": "f"}}})
    with pytest.raises(ConfigError) as e:
        _reward_fn(_getter(missing))
    assert e.value.where == "reward.custom_reward_function.path"


def test_zero_steps_is_a_usage_error_before_anything_heavy_starts():
    from rlx.smoke.engine import run

    with pytest.raises(UsageError) as e:
        run({}, steps=0)
    assert e.value.where == "--steps"
