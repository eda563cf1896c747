"""`rlx runs doctor` against a real sqlite MLflow store holding runs that carry each pathology, and healthy twins.

Every history is written through MLflow's public API (`log_batch`), with verl's metric names and params as verl's
own flattening logs them (`rlx.compare.synth.resolved_params`). Each pathology is a healthy history with one thing
broken from step ONSET on, built from what the pathology is (a NaN, an entropy that collapses while the reward stays
low, a constant reward, a doubling KL ...), so the expected step follows from the construction: doctor must flag it
no earlier than ONSET and within the check's documented window after it. One plain verl run is logged by verl's own
`Tracking` class, with no rlx tag: its algorithm (DAPO) must be inferred from its params.

Integration and slow: building the real store takes ~20 s on 2 busy cores (MLflow migrations, 34 runs, importing
verl for its Tracking class); the tests on it take under a second.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from rlx.algorithms import ALGORITHMS
from rlx.compare import synth

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # the store takes ~20 s to build (see above)

EXP = "doctor"
STEPS = 60
ONSET = 30
READY = sorted(a.name for a in ALGORITHMS if a.ready)
DAPO_KEPT = 512 * 16  # the dapo preset's data.train_batch_size x rollout.n: samples kept per step


def healthy(algo: str, seed: int = 0, steps: int = STEPS) -> dict[str, list[float]]:
    """A run that learns: reward rises with noise, entropy declines slowly, losses and ratios stay small."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, steps + 1, dtype=float)
    noise = lambda s: rng.normal(0, s, steps)  # noqa: E731
    score = 0.1 + 0.7 * (1 - np.exp(-t / 20)) + noise(0.02)
    m: dict[str, np.ndarray] = {
        "critic/score/mean": score,
        "critic/score/max": np.ones(steps),
        "critic/score/min": np.zeros(steps),
        "actor/entropy": 2.0 - 0.6 * t / steps + noise(0.01),
        "actor/pg_loss": noise(0.02),
        "actor/ppo_kl": noise(0.003),
        "actor/grad_norm": 1.0 + np.abs(noise(0.1)),
        "actor/pg_clipfrac": 0.005 + np.abs(noise(0.002)),
        "actor/pg_clipfrac_lower": np.abs(noise(0.001)),
        "response_length/mean": 200 + 20 * t / steps + noise(2),
        "response_length/clip_ratio": 0.02 + np.abs(noise(0.01)),
        "critic/advantages/max": 1.5 + noise(0.05),
        "critic/advantages/min": -1.5 + noise(0.05),
        "critic/advantages/mean": noise(0.01),
        "timing_s/step": 10 + noise(0.5),
    }
    if algo == "gspo":
        m["actor/pg_clipfrac"] = 0.2 + noise(0.02)  # sequence-level clipping: 0.1-0.3 is normal
    if algo in ("cispo", "gmpo"):
        m["actor/pg_clipfrac"] = 0.1 + np.abs(noise(0.01))
    if algo == "sapo":
        m["actor/pg_clipfrac"] = m["actor/pg_clipfrac_lower"] = np.zeros(steps)
    if algo in ("grpo", "aepo", "reinforce_pp"):  # presets with the KL to the reference on
        m["actor/kl_loss"] = 0.001 + 0.03 * t / steps + np.abs(noise(0.0005))
    if algo in ("ppo", "vapo"):
        warm = 10
        ev = np.where(t <= warm, 0.6 * t / warm, 0.7) + noise(0.02)
        m["critic/vf_explained_var"] = ev
        m["critic/vf_loss"] = 0.5 * np.exp(-t / 30) + np.abs(noise(0.01))
    if algo == "dapo":
        # verl's replay buffer generates until the batch is full: 20 % of all generated samples evicted
        m["training/filter_groups/evicted_samples"] = np.round(DAPO_KEPT * 0.2 / 0.8 + noise(20))
    if algo == "gepo":
        m["actor/gepo_weight_mean"] = 0.97 + noise(0.005)
        m["actor/gepo_weight_max"] = 1.3 + np.abs(noise(0.05))
        m["actor/gepo_weight_min"] = 0.6 + noise(0.02)
        m["actor/gepo_weight_var"] = 0.05 + np.abs(noise(0.005))
        m["actor/gepo_denominator_fallback"] = np.zeros(steps)
    if algo == "aspo":
        m["aspo/eligible_ratio"] = 0.2 + np.abs(noise(0.02))
        m["aspo/bias_clip_ratio"] = 0.3 + noise(0.02)
    return {k: [float(x) for x in v] for k, v in m.items()}


def broken(algo: str, changes: dict[str, object], seed: int = 0) -> dict[str, list[float]]:
    """The healthy history with some metrics replaced from ONSET on: {key: value or f(step) or full list}."""
    m = healthy(algo, seed)
    for key, change in changes.items():
        series = list(m.get(key, [0.0] * STEPS))
        for i in range(ONSET - 1, STEPS):
            step = i + 1
            series[i] = float(change(step) if callable(change) else change)
        m[key] = series
    return m


# The synthetic runs log the config keys doctor reads (verl's flattened names and values); logging all ~950 of them
# through MLflow's ORM costs ~1 s a run. The plain verl run below logs every key, as verl does.
KEPT_PARAMS = (
    "algorithm/",
    "data/train_batch_size",
    "data/max_response_length",
    "actor_rollout_ref/rollout/n",
    "actor_rollout_ref/actor/use_kl_loss",
    "actor_rollout_ref/actor/policy_loss/loss_mode",
    "trainer/critic_warmup",
    "critic/enable",
)
_PARAMS: dict[tuple, dict] = {}


def _params(algo: str, *overrides: str, full: bool = False) -> dict:
    if algo == "vapo":  # a 10-step value warm-up (the preset's 50 would cover most of these 60-step runs)
        overrides = ("trainer.critic_warmup=10", *overrides)
    key = (algo, overrides)
    if key not in _PARAMS:
        _PARAMS[key] = synth.resolved_params(algo, overrides)
    p = _PARAMS[key]
    return p if full else {k: v for k, v in p.items() if k.startswith(KEPT_PARAMS)}


# name -> (algo, params overrides, metric history, expected code, expected status, (first, last) step it may fire at)
PATHOLOGIES = {
    "nan-loss": ("grpo", (), broken("grpo", {"actor/pg_loss": math.nan}), "RLX901", "fail", (ONSET, ONSET)),
    "inf-grad": ("dapo", (), broken("dapo", {"actor/grad_norm": math.inf}), "RLX901", "fail", (ONSET, ONSET)),
    "entropy-collapse": (
        "grpo",
        (),
        broken("grpo", {"actor/entropy": 0.01, "critic/score/mean": lambda s: 0.15 + 0.02 * math.sin(s)}),
        "RLX902",
        "fail",
        (ONSET, ONSET),
    ),
    # A reward function that ignores the response: the score is a constant, the PPO critic and actor still move.
    "constant-reward": ("ppo", (), {**healthy("ppo"), "critic/score/mean": [0.25] * STEPS}, "RLX903", "fail", (20, 20)),
    "ppo-kl-blowup": ("gspo", (), broken("gspo", {"actor/ppo_kl": 2.5}), "RLX904", "fail", (ONSET, ONSET)),
    "grad-spike": (
        "drgrpo",
        (),
        broken("drgrpo", {"actor/grad_norm": lambda s: 500.0 if s == ONSET else 1.05}),
        "RLX904",
        "fail",
        (ONSET, ONSET),
    ),
    "truncated": (
        "grpo",
        (),
        broken("grpo", {"response_length/clip_ratio": 0.95}),
        "RLX905",
        "warn",
        (ONSET, ONSET + 4),
    ),
    # Every group all-wrong from ONSET: zero advantages, zero policy loss, a zero reward.
    "all-groups-equal": (
        "rloo",
        (),
        broken(
            "rloo",
            {
                "critic/advantages/max": 0.0,
                "critic/advantages/min": 0.0,
                "critic/advantages/mean": 0.0,
                "actor/pg_loss": 0.0,
                "critic/score/mean": 0.0,
            },
        ),
        "RLX906",
        "fail",
        (ONSET, ONSET + 2),
    ),
    # The KL to the reference doubles every 5 steps from 0.01 at ONSET (it passes min_level 0.05 at step ~42).
    "kl-runaway": (
        "grpo",
        (),
        broken("grpo", {"actor/kl_loss": lambda s: 0.01 * 2 ** ((s - ONSET) / 5)}),
        "RLX907",
        "warn",
        (ONSET, ONSET + 30),
    ),
    "dapo-overfiltered": (
        "dapo",
        (),
        broken("dapo", {"training/filter_groups/evicted_samples": DAPO_KEPT * 0.7 / 0.3}),
        "RLX920",
        "warn",
        (ONSET, ONSET + 9),
    ),
    "critic-negative": (
        "vapo",
        (),
        broken("vapo", {"critic/vf_explained_var": -0.5}),
        "RLX921",
        "fail",
        (ONSET, ONSET + 9),
    ),
    "gspo-all-clipped": ("gspo", (), broken("gspo", {"actor/pg_clipfrac": 0.95}), "RLX922", "fail", (ONSET, ONSET + 9)),
    # GSPO's normal clip fraction (0.2) on token-level PPO is alarming.
    "grpo-gspo-clipfrac": (
        "grpo",
        (),
        broken("grpo", {"actor/pg_clipfrac": 0.2}),
        "RLX922",
        "warn",
        (ONSET, ONSET + 9),
    ),
    "gepo-weights": ("gepo", (), broken("gepo", {"actor/gepo_weight_max": 50.0}), "RLX923", "fail", (ONSET, ONSET)),
    "aspo-no-eligible": (
        "aspo",
        (),
        broken("aspo", {"aspo/eligible_ratio": 0.0}),
        "RLX924",
        "warn",
        (ONSET, ONSET + 9),
    ),
    "aepo-entropy-spike": (
        "aepo",
        (),
        broken("aepo", {"actor/entropy": lambda s: 6.0 if s == ONSET else 1.7}),
        "RLX925",
        "warn",
        (ONSET, ONSET),
    ),
    "cispo-truncated": ("cispo", (), broken("cispo", {"actor/pg_clipfrac": 0.8}), "RLX926", "warn", (ONSET, ONSET + 9)),
}


def _verl_dapo_history() -> dict[str, list[float]]:
    return broken("dapo", {"training/filter_groups/evicted_samples": 3 * DAPO_KEPT})  # 75 % of the samples evicted


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """{name: run_id} for the pathologies, `twin-<algo>` for every ready algorithm, and `verl-dapo`."""
    from mlflow.tracking import MlflowClient

    tmp = tmp_path_factory.mktemp("doctor")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        client = MlflowClient(uri)
        exp = client.create_experiment(EXP)
        ids = {}
        params = {a: _params(a) for a in READY}
        for name, (algo, overrides, hist, *_rest) in PATHOLOGIES.items():
            p = _params(algo, *overrides) if overrides else params[algo]
            ids[name] = synth.log_run(client, exp, name, params=p, metrics=hist, tags=synth.rlx_tags(algo))
        for algo in READY:
            ids[f"twin-{algo}"] = synth.log_run(
                client,
                exp,
                f"twin-{algo}",
                params=params[algo],
                metrics=healthy(algo, seed=1),
                tags=synth.rlx_tags(algo),
            )
        # the solved twin: every sample correct from ONSET, so advantages are zero and the reward flat at its best
        ids["twin-solved"] = synth.log_run(
            client,
            exp,
            "twin-solved",
            params=params["grpo"],
            tags=synth.rlx_tags("grpo"),
            metrics=broken(
                "grpo",
                {
                    "critic/advantages/max": 0.0,
                    "critic/advantages/min": 0.0,
                    "critic/score/mean": 1.0,
                    "critic/score/min": 1.0,
                    "actor/pg_loss": 0.0,
                },
            ),
        )
        # a plain verl DAPO run, logged by verl's own Tracking (no rlx tags; algorithm from params)
        from verl.utils.tracking import Tracking

        from rlx.resolve import resolve

        cfg = resolve("dapo", overrides=[f"trainer.project_name={EXP}", "trainer.experiment_name=verl-dapo"])
        tracker = Tracking(EXP, "verl-dapo", default_backend=["mlflow"], config=cfg.container())
        hist = _verl_dapo_history()
        for i in range(STEPS):
            tracker.log({k: v[i] for k, v in hist.items()}, step=i + 1)
        tracker.finish()
        ids["verl-dapo"] = next(r.info.run_id for r in client.search_runs([exp], "attributes.run_name = 'verl-dapo'"))
        yield uri, ids
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture(scope="module")
def diagnoses(store):
    from rlx.doctor import diagnose

    uri, ids = store
    found = diagnose(list(ids.values()), tracking_uri=uri)
    by_id = {d.run_id: d for d in found}
    return {name: by_id[rid] for name, rid in ids.items()}


def _flagged(d):
    return {v.code: v for v in d.verdicts if v.status.value in ("warn", "fail")}


@pytest.mark.parametrize("name", sorted(PATHOLOGIES))
def test_each_pathology_is_flagged_at_its_step(name, diagnoses):
    algo, _, _, code, status, (first, last) = PATHOLOGIES[name]
    d = diagnoses[name]
    assert d.algo == algo and d.algo_source == "tag"
    flagged = _flagged(d)
    assert code in flagged, (
        f"{name}: expected {code}; verdicts: {[(v.code, v.status.value, v.message) for v in d.verdicts]}"
    )
    v = flagged[code]
    assert v.status.value == status, (v.status, v.message)
    assert first <= v.step <= last, (v.step, v.message)
    assert v.evidence and all(e.metric and len(e.steps) == len(e.values) for e in v.evidence)
    assert v.hint and ("=" in v.hint or "." in v.hint)  # names a knob
    # the pathology is the only failure: no other check is dragged in by the construction
    others = {c for c, x in flagged.items() if x.status.value == "fail" and c != code}
    assert not others, {c: flagged[c].message for c in others}


@pytest.mark.parametrize("algo", READY + ["solved"])
def test_healthy_twins_are_not_flagged(algo, diagnoses):
    d = diagnoses[f"twin-{algo}"]
    assert d.healthy and not _flagged(d), {c: v.message for c, v in _flagged(d).items()}
    checked = {v.code for v in d.verdicts if v.status.value == "ok"}
    assert {"RLX901", "RLX902", "RLX904", "RLX906"} <= checked


def test_checks_apply_by_algorithm():
    """The filter check goes to DAPO and to any run that filters groups (gspo-decoupled: AReaL's dynamic sampling);
    only GEPO gets the weight check; GSPO and token-level PPO read clipfrac differently."""
    for algo in READY:
        codes = {v.code for v in _diagnose_healthy(algo).verdicts}
        filters = str(_params(algo, full=True).get("algorithm/filter_groups/enable")).lower() == "true"
        assert ("RLX920" in codes) == (algo == "dapo" or filters), algo
        assert ("RLX923" in codes) == (algo == "gepo"), algo
        assert ("RLX924" in codes) == (algo == "aspo"), algo
        assert ("RLX922" in codes) == (algo not in ("sapo", "cispo", "gmpo", "gepo")), algo
        assert ("RLX921" in codes) == (algo in ("ppo", "vapo")), algo


def _diagnose_healthy(algo):
    from rlx.doctor import diagnose_view
    from rlx.doctor.registry import Curve, RunView

    hist = healthy(algo)
    p = {k: str(v) for k, v in _params(algo, full=True).items()}
    curves = {k: Curve(np.arange(1, STEPS + 1, dtype=float), np.asarray(v)) for k, v in hist.items()}
    return diagnose_view(RunView("0" * 32, algo, algo, "tag", p, {}, curves))


def test_plain_verl_run_is_diagnosed_with_its_algorithm_inferred(diagnoses):
    d = diagnoses["verl-dapo"]
    assert (d.algo, d.algo_source) == ("dapo", "params")
    v = _flagged(d)["RLX920"]
    assert v.status.value == "warn" and ONSET <= v.step <= ONSET + 9
    # verl's replay buffer generates until the batch is full: 3 x kept evicted beside train_batch_size x n kept
    p = _params("dapo")
    assert p["data/train_batch_size"] * p["actor_rollout_ref/rollout/n"] == DAPO_KEPT
    assert v.evidence[0].values[-1] == pytest.approx(0.75, abs=1e-9)


def test_cli_exit_codes_and_formats(store, rlx_cli):
    uri, ids = store
    code, out, err = rlx_cli("runs", "doctor", "twin-grpo", "--tracking-uri", uri)
    assert code == 0, err
    assert "healthy" in out and "FAIL" not in out
    code, out, err = rlx_cli("runs", "doctor", "nan-loss", "twin-gspo", "--tracking-uri", uri, "--format", "json")
    assert code == 1, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["twin-gspo"]["healthy"] and not rows["nan-loss"]["healthy"]
    (nan,) = [v for v in rows["nan-loss"]["verdicts"] if v["code"] == "RLX901"]
    assert nan["status"] == "fail" and nan["step"] == ONSET and nan["evidence"][0]["metric"] == "actor/pg_loss"
    assert nan["evidence"][0]["values"][-1] == "nan" and nan["hint"]
    code, out, err = rlx_cli("runs", "doctor", "gepo-weights", "--tracking-uri", uri, "--format", "github")
    assert code == 1
    assert out.startswith("::error title=RLX923") and "hint: " in out
    code, out, err = rlx_cli("runs", "doctor", "x", "--tracking-uri", "sqlite:////nonexistent/dir/mlflow.db")
    assert code == 3 and "hint:" in err
    code, out, err = rlx_cli("runs", "doctor", "no-such-run", "--tracking-uri", uri)
    assert code == 1 and "no run with id or name" in err


def test_html_section_per_run_in_doctor_and_compare_reports(store, rlx_cli, tmp_path):
    uri, ids = store
    page = tmp_path / "doctor.html"
    code, _, err = rlx_cli("runs", "doctor", "gepo-weights", "--tracking-uri", uri, "--html", str(page))
    assert code == 1, err
    text = page.read_text(encoding="utf-8")
    assert "<tr class='doctor-fail'><td>fail</td><td>RLX923</td>" in text and "hint:" in text
    report = tmp_path / "compare.html"
    code, _, err = rlx_cli("compare", "runs", "nan-loss", "twin-grpo", "--tracking-uri", uri, "--html", str(report))
    assert code == 0, err
    text = report.read_text(encoding="utf-8")
    sections = text.split("<section class='doctor'>")[1:]
    assert len(sections) == 2  # one per run of the comparison
    by_run = {s.split("<h3>doctor: ", 1)[1].split(" ", 1)[0]: s for s in sections}
    assert "doctor-fail'><td>fail</td><td>RLX901" in by_run["nan-loss"]
    assert "doctor-fail" not in by_run["twin-grpo"] and "doctor-warn" not in by_run["twin-grpo"]


def test_live_doctor_reports_the_first_failure_as_soon_as_it_is_logged(store):
    """What `rlx runs logs -f` and the train status line use: re-judged as steps arrive, the failure shown once."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from rlx.doctor.live import LiveDoctor
    from rlx.launch.lifecycle import Status

    uri, _ = store
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXP).experiment_id
    rid = client.create_run(exp, run_name="live-nan", tags=synth.rlx_tags("grpo")).info.run_id
    hist = PATHOLOGIES["nan-loss"][2]
    doctor, notes = LiveDoctor(uri, rid, every=0.0), []
    status = Status("RUNNING")
    for step in range(1, ONSET + 3):
        client.log_batch(rid, metrics=[Metric(k, v[step - 1], step, step) for k, v in hist.items()])
        status.step = step
        doctor.apply(status, note=notes.append)
        if step < ONSET:
            assert doctor.fired is None and status.health is None, step
    assert len(notes) == 1 and notes[0].startswith(f"rlx doctor: FAIL RLX901 NaN or inf in a metric at step {ONSET}")
    assert "hint: " in notes[0]
    assert f"doctor: FAIL RLX901 @ step {ONSET}" in status.line()
