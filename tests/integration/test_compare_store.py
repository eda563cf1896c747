"""`rlx compare runs` against a real sqlite MLflow store holding runs logged the way verl and rlx log them.

The store holds: a plain verl run logged by verl's own `Tracking` class (params flattened by verl, `@` metric keys
sanitised by verl), rlx-tagged GSPO and GRPO runs with provenance artifacts, a failed run (MLflow says FINISHED,
rlx's tag says FAILED), a killed run left RUNNING, and runs of different lengths.
"""

from __future__ import annotations

import io
import math
import os

import pytest

from rlx.compare import compare_runs, open_source, parse_metric_option, synth
from rlx.compare import plot as P
from rlx.compare import report as R
from rlx.errors import ConfigError, UnreachableError
from rlx.track.reads import ClientSource

pytestmark = pytest.mark.integration

EXP = "gsm8k"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Build the store once for the module; yields (uri, {name: run_id}, {name: params})."""
    from mlflow.tracking import MlflowClient

    tmp = tmp_path_factory.mktemp("cmp")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        p_gspo, p_grpo = synth.resolved_params("gspo"), synth.resolved_params("grpo")
        ids = {}
        # 1. A plain verl run, logged by verl's real Tracking (it reads MLFLOW_TRACKING_URI).
        from verl.utils.tracking import Tracking

        from rlx.resolve import resolve

        cfg = resolve("grpo", overrides=["trainer.project_name=gsm8k", "trainer.experiment_name=verl-grpo"]).container()
        tracker = Tracking(EXP, "verl-grpo", default_backend=["mlflow"], config=cfg)
        for step, values in enumerate(zip(*synth.curves(12, seed=7, gain=0.8).values(), strict=True), start=1):
            metrics = dict(zip(synth.CURVE_KEYS, values, strict=True))
            if step % 4 == 0:
                metrics["val-core/gsm8k/acc/mean@1"] = 0.1 * step
            tracker.log(metrics, step=step)
        tracker.finish()
        import mlflow

        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(EXP).experiment_id
        ids["verl-grpo"] = mlflow.search_runs([exp], output_format="list")[0].info.run_id
        # 2. rlx runs with tags and provenance; 3. a failed one; 4. a killed one (RUNNING, no rlx tags).
        ids["gspo-1"] = synth.log_run(client, exp, "gspo-1", params=p_gspo, metrics=synth.curves(20, 1, gain=0.9),
                                      tags=synth.rlx_tags("gspo"), provenance=synth.provenance_of("gspo"))
        ids["grpo-1"] = synth.log_run(client, exp, "grpo-1", params=p_grpo, metrics=synth.curves(20, 2, gain=0.6),
                                      tags=synth.rlx_tags("grpo"), provenance=synth.provenance_of("grpo"))
        ids["grpo-failed"] = synth.log_run(client, exp, "grpo-failed", params=p_grpo,
                                           metrics=synth.curves(4, 3, keys=["critic/score/mean"], gain=5.0),
                                           tags=synth.rlx_tags("grpo", "FAILED"), status="FINISHED")
        ids["killed"] = synth.log_run(client, exp, "killed", params=p_gspo, metrics=synth.curves(6, 4), status=None)
        other = client.create_experiment("other")
        ids["elsewhere"] = synth.log_run(client, other, "elsewhere", params={"a": 1}, metrics={"x/y": [1.0, 2.0]})
        yield uri, ids, {"gspo": p_gspo, "grpo": p_grpo}
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


def _row(cmp, name):
    return next(r for r in cmp.rows if r.info.name == name)


def test_table_rows_status_algorithm_and_marks(store):
    uri, ids, _ = store
    cmp = compare_runs(experiments=[EXP], tracking_uri=uri)
    assert {r.info.name for r in cmp.rows} == {"verl-grpo", "gspo-1", "grpo-1", "grpo-failed", "killed"}
    verl = _row(cmp, "verl-grpo")
    assert (verl.algorithm, verl.algorithm_source, verl.status, verl.steps) == ("grpo", "params", "FINISHED", 12)
    assert any(m.startswith("no rlx tags") for m in verl.marks)
    assert any(m.startswith("short: 12/20") for m in verl.marks)
    # verl sanitised `@` to `_at_`; the val-core headline is a column, and only some steps carry it
    assert "val-core/gsm8k/acc/mean_at_1" in [m.key for m in cmp.metrics]
    val = verl.summaries["val-core/gsm8k/acc/mean_at_1"]
    assert val.points == 3 and val.final == pytest.approx(1.2)
    assert (_row(cmp, "gspo-1").algorithm, _row(cmp, "gspo-1").algorithm_source) == ("gspo", "tag")
    failed = _row(cmp, "grpo-failed")
    assert failed.status == "FAILED" and failed.info.mlflow_status == "FINISHED"  # the tag wins
    assert "failed" in failed.marks and any(m.startswith("missing:") for m in failed.marks)
    assert failed.summaries["actor/entropy"] is None
    killed = _row(cmp, "killed")
    assert killed.status == "RUNNING?" and killed.ongoing and killed.algorithm == "gspo"
    assert _row(cmp, "gspo-1").spark and len(_row(cmp, "gspo-1").spark) == 16


def test_best_is_direction_aware_and_skips_broken_runs(store):
    uri, ids, _ = store
    cmp = compare_runs(experiments=[EXP], tracking_uri=uri)
    # gspo-1's reward rises to 0.9, grpo-1's to 0.6, verl-grpo's to 0.8; the failed run's 5.0 does not count.
    assert cmp.best["critic/score/mean"]["final"] == {ids["gspo-1"]}
    assert cmp.best["actor/entropy"] == {"final": set(), "best": set(), "auc": set()}  # neutral: never highlighted
    kl = {r.run_id: r.summaries["actor/ppo_kl"].final for r in cmp.rows
          if r.summaries.get("actor/ppo_kl") and r.status in ("SUCCEEDED", "FINISHED")}
    assert cmp.best["actor/ppo_kl"]["final"] == {min(kl, key=kl.get)}  # lower is better


def test_config_diff_gspo_vs_grpo_lists_exactly_the_differing_keys(store):
    uri, ids, params = store
    cmp = compare_runs([ids["gspo-1"], "grpo-1"], tracking_uri=uri)
    a, b = params["gspo"], params["grpo"]
    expected = {k.replace("/", ".") for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert set(cmp.diff.keys) == expected
    assert "actor_rollout_ref.actor.policy_loss.loss_mode" in expected and len(expected) < 20
    assert cmp.diff.identical == len(set(a) & set(b)) - len(expected)
    e = next(e for e in cmp.diff.entries if e.key == "actor_rollout_ref.actor.clip_ratio_high")
    assert e.values == {ids["gspo-1"]: "0.0004", ids["grpo-1"]: "0.2"}
    assert e.section == "actor_rollout_ref.actor"
    assert e.provenance[ids["gspo-1"]]["source"] == "preset gspo"
    assert "paper" in e.provenance[ids["gspo-1"]]["reason"]


def test_selection_by_id_name_filter_last_and_algo(store):
    uri, ids, _ = store
    src = open_source(uri)
    assert [r.run_id for r in compare_runs([ids["killed"]], source=src).rows] == [ids["killed"]]
    assert {r.info.name for r in compare_runs(experiments=[EXP], algos=["gspo"], source=src).rows} == {"gspo-1",
                                                                                                      "killed"}
    got = compare_runs(experiments=[EXP], filter_string="tags.`rlx.algo` = 'grpo'", source=src)
    assert {r.info.name for r in got.rows} == {"grpo-1", "grpo-failed"}
    got = compare_runs(experiments=[EXP], filter_string="params.`actor_rollout_ref/actor/policy_loss/loss_mode` = "
                                                        "'gspo'", source=src)
    assert {r.info.name for r in got.rows} == {"gspo-1", "killed"}
    assert [r.info.name for r in compare_runs(experiments=[EXP], last=1, source=src).rows] == ["killed"]
    assert [r.info.name for r in compare_runs(["elsewhere"], source=src).rows] == ["elsewhere"]


def test_clear_errors(store):
    uri, ids, _ = store
    src = open_source(uri)
    with pytest.raises(ConfigError, match="MLflow rejected") as e:
        compare_runs(experiments=[EXP], filter_string="params.x = 'a' OR params.y = 'b'", source=src)
    assert e.value.where == "--filter" and "AND" in e.value.hint
    with pytest.raises(ConfigError, match="no runs matched") as e:
        compare_runs(experiments=[EXP], filter_string="tags.`rlx.algo` = 'nothing'", source=src)
    assert EXP in e.value.hint
    with pytest.raises(ConfigError, match="gspo-2") as e:
        compare_runs(["gspo-2"], source=src)
    assert "gspo-1" in e.value.hint
    with pytest.raises(ConfigError, match="no experiment named 'gsm8"):
        compare_runs(experiments=["gsm8"], source=src)
    with pytest.raises(UnreachableError, match="no MLflow store"):
        open_source(uri + ".missing")


def test_sql_and_client_sources_agree(store):
    """The bulk SQL path reads MLflow's tables directly; the public client must give the same comparison."""
    uri, ids, _ = store
    from mlflow.tracking import MlflowClient

    fast = compare_runs(experiments=[EXP], tracking_uri=uri, metrics=[parse_metric_option("actor/pg_loss")])
    slow = compare_runs(experiments=[EXP], source=ClientSource(uri, MlflowClient(uri)),
                        metrics=[parse_metric_option("actor/pg_loss")])
    assert [r.run_id for r in fast.rows] == [r.run_id for r in slow.rows]
    for a, b in zip(fast.rows, slow.rows, strict=True):
        assert a.status == b.status and a.algorithm == b.algorithm and a.steps == b.steps
        for key, s in a.summaries.items():
            t = b.summaries[key]
            assert (s is None) == (t is None)
            if s is not None:
                assert s.final == pytest.approx(t.final, nan_ok=True) and s.auc == pytest.approx(t.auc, nan_ok=True)
    assert fast.diff.keys == slow.diff.keys and fast.diff.identical == slow.diff.identical


def test_png_decodes_with_one_line_per_run_and_metric(store, tmp_path):
    import matplotlib.image

    uri, ids, _ = store
    cmp = compare_runs(experiments=[EXP], tracking_uri=uri)
    fig = P.render(cmp, ["critic/score/mean", "actor/entropy"], smooth=0.6)
    # 5 runs logged the reward; the failed run logged nothing else, so entropy has 4 lines
    assert fig.lines == 5 + 4 and fig.panels == ["critic/score/mean", "actor/entropy"]
    path = tmp_path / "curves.png"
    P.write_png(fig, path)
    img = matplotlib.image.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert not list(tmp_path.glob(".curves.png.*"))  # no temp file left behind


def test_renderers_show_the_same_facts(store):
    uri, ids, _ = store
    cmp = compare_runs(experiments=[EXP], tracking_uri=uri)
    from rich.console import Console

    buf = io.StringIO()
    R.render_text(cmp, Console(file=buf, width=300, no_color=True))
    text = buf.getvalue()
    assert "grpo-failed" in text and "FAILED" in text and "RUNNING?" in text and "grpo~" in text
    assert "config diff" in text and "clip_ratio_high" in text
    csv_text = R.to_csv(cmp)
    header = csv_text.splitlines()[0].split(",")
    assert "critic/score/mean:auc" in header and len(csv_text.splitlines()) == 6
    md = R.to_markdown(cmp)
    assert md.count("\n| ") >= 6 and "**" in md
    data = R.to_json(cmp)
    assert data["best"]["critic/score/mean"]["final"] == [ids["gspo-1"]]
    page = R.to_html(cmp, P.render(cmp, ["critic/score/mean"]).png)
    assert "data:image/png;base64," in page and "http://" not in page and "<script" not in page
    assert page.count("<tr>") >= 6


def test_nan_points_and_missing_metrics_do_not_crash(mlflow_uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.create_experiment("edge")
    synth.log_run(client, exp, "nan", params={"x": 1}, metrics={"critic/score/mean": [0.1, math.nan, 0.3]})
    synth.log_run(client, exp, "empty", params={}, metrics={})
    cmp = compare_runs(experiments=["edge"], tracking_uri=mlflow_uri)
    nan_row, empty = _row(cmp, "nan"), _row(cmp, "empty")
    assert nan_row.summaries["critic/score/mean"].final == pytest.approx(0.3)
    assert nan_row.summaries["critic/score/mean"].points == 3
    assert empty.steps is None and "no metrics" in empty.marks
    assert cmp.diff.without_params == [empty.run_id]
