"""Pure logic of `rlx compare runs`: curve summaries, best-by-direction, sparklines, smoothing, metric columns."""

from __future__ import annotations

import math

import pytest

from rlx.compare.metrics import (
    KEY_METRICS,
    REWARD,
    Direction,
    Histories,
    best_runs,
    direction_of,
    directions_text,
    parse_metric_option,
    select_metrics,
    smooth,
    sparkline,
    summarise,
)


def _frame(points):
    return Histories(points)


def test_summary_final_best_auc_per_direction():
    pts = [("a", REWARD, s, 100 + s, v) for s, v in [(1, 0.0), (2, 1.0), (3, 0.5)]]
    pts += [("a", "actor/ppo_kl", s, 100 + s, v) for s, v in [(1, 0.3), (3, 0.1)]]
    pts += [("a", "actor/entropy", 1, 1, 2.0)]
    out = summarise(_frame(pts), {REWARD: Direction.UP, "actor/ppo_kl": Direction.DOWN,
                                  "actor/entropy": Direction.NEUTRAL})
    r = out[("a", REWARD)]
    assert (r.final, r.best, r.points, r.first_step, r.last_step) == (0.5, 1.0, 3, 1, 3)
    # trapezoids: (0+1)/2 + (1+0.5)/2 = 1.25 over a span of 2 steps
    assert r.auc == pytest.approx(0.625)
    kl = out[("a", "actor/ppo_kl")]
    assert (kl.final, kl.best) == (0.1, 0.1) and kl.auc == pytest.approx(0.2)
    ent = out[("a", "actor/entropy")]
    assert ent.best is None and ent.auc == 2.0 and ent.final == 2.0  # one point: its value


def test_duplicate_steps_keep_the_latest_write_and_nan_is_skipped():
    pts = [("a", REWARD, 1, 10, 0.0), ("a", REWARD, 2, 20, 9.0), ("a", REWARD, 2, 30, 1.0),
           ("a", REWARD, 3, 40, math.nan), ("b", REWARD, 1, 10, math.nan)]
    out = summarise(_frame(pts), {REWARD: Direction.UP})
    a = out[("a", REWARD)]
    assert a.points == 3 and a.best == 1.0  # the overwritten 9.0 is gone
    assert math.isnan(a.final)  # the run ended on a NaN: shown, not hidden
    assert a.auc == pytest.approx(0.5)  # only the finite segment 1 -> 2
    b = out[("b", REWARD)]
    assert math.isnan(b.auc) and math.isnan(b.best)


def test_runs_are_kept_apart_in_one_frame():
    pts = [("a", REWARD, s, s, 1.0) for s in range(5)] + [("b", REWARD, s, s, 2.0) for s in range(3)]
    out = summarise(_frame(pts), {REWARD: Direction.UP})
    assert out[("a", REWARD)].auc == 1.0 and out[("b", REWARD)].auc == 2.0
    assert out[("a", REWARD)].points == 5 and out[("b", REWARD)].last_step == 2
    h = _frame(list(reversed(pts)))  # input order does not matter
    assert h.curve("b", REWARD) == ([0.0, 1.0, 2.0], [2.0, 2.0, 2.0]) and h.curve("b", "nope") == ([], [])
    assert h.last_steps() == {"a": 4, "b": 2}
    assert Histories().empty and list(Histories().curves()) == [] and summarise(Histories(), {}) == {}


def test_best_runs_by_direction_ties_and_neutral():
    vals = {"a": 0.5, "b": 0.9, "c": 0.9, "d": None, "e": math.nan}
    assert best_runs(vals, Direction.UP) == {"b", "c"}
    assert best_runs(vals, Direction.DOWN) == {"a"}
    assert best_runs(vals, Direction.NEUTRAL) == set()
    assert best_runs({"a": 1.0}, Direction.UP) == set()  # nothing to beat


def test_documented_directions():
    table = {k: d for k, d, _ in KEY_METRICS}
    assert table[REWARD] is Direction.UP
    assert table["actor/ppo_kl"] is Direction.ZERO  # verl logs k1 = mean(log pi_old - log pi): either sign
    assert table["actor/kl_loss"] is Direction.NEUTRAL  # KL to the reference: the price of reward, not a goal
    assert table["actor/entropy"] is table["actor/pg_clipfrac"] is table["response_length/mean"] is Direction.NEUTRAL
    assert direction_of("val-core/gsm8k/acc/mean_at_1") is Direction.UP
    assert direction_of("val-core/gsm8k/acc/maj_at_4/std") is Direction.NEUTRAL
    assert direction_of("actor/pg_loss") is Direction.DOWN
    assert direction_of("something/else") is Direction.NEUTRAL


def test_closest_to_zero_is_decided_by_magnitude():
    # A negative ppo_kl far from 0 is an unstable update, not the best one.
    assert best_runs({"neg": -0.3, "tiny": 0.001, "pos": 0.05}, Direction.ZERO) == {"tiny"}
    assert best_runs({"neg": -0.001, "pos": 0.05}, Direction.ZERO) == {"neg"}
    assert best_runs({"a": -0.02, "b": 0.02, "c": 0.5}, Direction.ZERO) == {"a", "b"}  # same distance: a tie
    assert best_runs({"neg": -0.3, "tiny": 0.001}, Direction.DOWN) == {"neg"}  # what "lower" would have said
    # A curve's best is its point of least magnitude, with its sign.
    pts = [("a", "actor/ppo_kl", s, s, v) for s, v in [(1, 0.3), (2, -0.02), (3, 0.1), (4, -0.5)]]
    kl = summarise(_frame(pts), {"actor/ppo_kl": Direction.ZERO})[("a", "actor/ppo_kl")]
    assert (kl.final, kl.best) == (-0.5, -0.02)


def test_directions_in_help_come_from_the_table():
    assert directions_text() == ("score, val, vf_ev, tput up; resp_len, entropy, clipfrac, kl_ref, kl_rew, vf_loss "
                                 "neutral; ppo_kl closest to 0")
    assert parse_metric_option("actor/grad_norm:zero").direction is Direction.ZERO


def test_kl_to_reference_is_a_column_only_when_logged():
    base = {REWARD, "actor/ppo_kl", "actor/entropy", "actor/pg_clipfrac", "response_length/mean", "perf/throughput"}
    cols, notes = select_metrics([], base)
    assert "actor/kl_loss" not in [c.key for c in cols] and notes == []  # GSPO has no KL loss: no column, no nag
    cols, _ = select_metrics([], base | {"actor/kl_loss"})
    assert [c.label for c in cols] == ["score", "resp_len", "entropy", "clipfrac", "ppo_kl", "kl_ref", "tput"]


def test_critic_fit_is_a_column_only_for_runs_with_a_critic():
    """verl logs critic/vf_loss and critic/vf_explained_var (dp_critic.py, metric_utils.py) only with a critic."""
    base = {REWARD, "actor/ppo_kl", "actor/entropy", "actor/pg_clipfrac", "response_length/mean"}
    cols, notes = select_metrics([], base)
    assert not [c for c in cols if c.key.startswith("critic/vf")] and "critic" not in " ".join(notes)
    cols, _ = select_metrics([], base | {"critic/vf_loss", "critic/vf_explained_var"})
    by_key = {c.key: c.direction for c in cols}
    assert by_key["critic/vf_explained_var"] is Direction.UP  # 1 = the critic predicts the returns exactly
    assert by_key["critic/vf_loss"] is Direction.NEUTRAL  # in the returns' units: not comparable across rewards


def test_only_metrics_replace_the_defaults():
    cols, notes = select_metrics([parse_metric_option("actor/grad_norm")], {REWARD, "actor/grad_norm"}, only=True)
    assert [c.key for c in cols] == ["actor/grad_norm"] and notes == []


def test_metric_option_direction_suffix():
    m = parse_metric_option("actor/grad_norm:down")
    assert (m.key, m.direction, m.requested) == ("actor/grad_norm", Direction.DOWN, True)
    assert parse_metric_option("weird:key").key == "weird:key"  # not a direction: part of the key


def test_select_metrics_val_core_and_notes():
    logged = {REWARD, "actor/entropy", "val-core/gsm8k/acc/mean_at_1", "val-core/gsm8k/acc/best_at_4/mean"}
    cols, notes = select_metrics([parse_metric_option("actor/entrpy")], logged)
    keys = [c.key for c in cols]
    assert keys == [REWARD, "val-core/gsm8k/acc/mean_at_1", "actor/entropy", "actor/entrpy"]
    assert any("actor/ppo_kl" in n for n in notes)  # key metric nobody logged: dropped, said so
    assert any("actor/entrpy" in n and "actor/entropy" in n for n in notes)  # typo: did you mean


def test_sparkline_shared_scale_and_gaps():
    assert sparkline([0.0, 1.0], 0.0, 1.0, width=2) == "▁█"
    assert sparkline([0.5, 0.5], 0.0, 1.0, width=2) in ("▄▄", "▅▅")
    assert sparkline([1.0, math.nan], 0.0, 1.0, width=2) == "█ "
    assert len(sparkline(list(range(100)), 0, 99, width=16)) == 16


def test_smooth_ema():
    assert smooth([1.0, 2.0], 0.0) == [1.0, 2.0]
    out = smooth([0.0, 1.0, math.nan, 1.0], 0.5)
    assert out[0] == 0.0 and 0.0 < out[1] < 1.0 and math.isnan(out[2]) and out[3] > out[1]
