"""`rlx compare runs` on real smoke runs: a GSPO run against a GRPO run, trained by `python -m rlx.smoke` on CPU.

The config diff must list exactly the keys in which the two runs' logged configs differ (read back through
MLflow's public API), and those must include what GSPO changes: the loss mode and the clip ratios. The HTML report of
the same two runs is rendered in headless Chromium (Debian's `chromium`; `.ci/run` installs it) and checked as a
reader sees it; `RLX_REGEN_DOCS=1` also rewrites its screenshot, docs/compare-report.png, shown in the README.

Slow by nature (two real CPU trainings in fresh interpreters, ~1 min each on an idle 2-core box, 3 steps each; the
runs are shared by the module's tests): marked `smoke` so quick runs can deselect it with `-m "not smoke"`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.smoke]

STEPS = 3
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "compare-report.png"
WIDTH = 1400  # px: the table of 7 metric columns fits without wrapping


def _smoke(tmp_path, uri: str, algo: str) -> None:
    from rlx.fsutil import atomic_write_text
    from rlx.resolve import resolve

    cfg = tmp_path / f"{algo}.yaml"
    atomic_write_text(cfg, resolve(algo, overrides=["trainer.project_name=smoke",
                                                    f"trainer.experiment_name={algo}-smoke"]).to_yaml())
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("MLFLOW_RUN_ID", None)
    r = subprocess.run([sys.executable, "-m", "rlx.smoke", "--config", str(cfg), "--steps", str(STEPS), "--seed", "0",
                        "--algo", algo], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]


def _trained_with(params: dict[str, str]) -> dict[str, str]:
    """A smoke run's params as it trained: the sizes it logged as `rlx/smoke/<dotted key>` replace verl's values."""
    out = dict(params)
    for key, value in params.items():
        if key.startswith("rlx/smoke/") and "." in key[len("rlx/smoke/"):]:
            out[key[len("rlx/smoke/"):].replace(".", "/")] = value
            del out[key]
    return out


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory, _mlflow_template) -> str:
    """One MLflow store holding a real 3-step GSPO smoke run and, newer, a GRPO one."""
    pytest.importorskip("rlx.smoke.engine")
    tmp = tmp_path_factory.mktemp("smoke-compare")
    shutil.copyfile(_mlflow_template, tmp / "mlflow.db")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    _smoke(tmp, uri, "gspo")
    _smoke(tmp, uri, "grpo")
    return uri


def test_gspo_vs_grpo_smoke_runs(smoke_store):
    from mlflow.tracking import MlflowClient

    from rlx.compare import compare_runs

    mlflow_uri = smoke_store
    cmp = compare_runs(["gspo-smoke", "grpo-smoke"], tracking_uri=mlflow_uri)
    assert [r.info.name for r in cmp.rows] == ["gspo-smoke", "grpo-smoke"]
    for row in cmp.rows:
        assert row.steps == STEPS and row.summaries["critic/score/mean"] is not None
    assert [r.algorithm for r in cmp.rows] == ["gspo", "grpo"]

    client = MlflowClient(mlflow_uri)
    a, b = (_trained_with(client.get_run(r.run_id).data.params) for r in cmp.rows)
    expected = {(k if k.startswith("rlx/") else k.replace("/", ".")) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    expected = {k for k in expected if not (k.startswith("rlx/set/") and k[len("rlx/set/"):] in expected)}
    assert set(cmp.diff.keys) == expected
    for key in ("actor_rollout_ref.actor.policy_loss.loss_mode", "actor_rollout_ref.actor.clip_ratio_low",
                "actor_rollout_ref.actor.clip_ratio_high"):
        assert key in expected
    assert "algorithm.adv_estimator" not in expected  # both are grpo-estimator algorithms


# Runs inside the page in the browser, after layout: what a reader sees, as JSON in a <pre> that --dump-dom prints.
_PROBE = """<script>window.addEventListener('load', () => {
  const shown = (el) => { const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const out = {
    tables: [...document.querySelectorAll('table')].map(t => ({shown: shown(t), rows: t.rows.length,
      head: [...t.rows[0].cells].map(c => c.innerText.trim()), first: [...t.rows].map(r => r.cells[0].innerText.trim())})),
    headings: [...document.querySelectorAll('h1, h2')].map(h => h.innerText.trim()),
    charts: [...document.querySelectorAll('figure')].map(f => { const i = f.querySelector('img'),
      c = f.querySelector('figcaption');
      return {caption: c ? c.innerText.trim() : '', caption_shown: !!c && shown(c), img_shown: !!i && shown(i),
              decoded: !!i && i.complete && i.naturalWidth > 100 && i.naturalHeight > 100}; }),
    height: Math.ceil(document.body.getBoundingClientRect().bottom) + 24,
  };
  const pre = document.createElement('pre'); pre.id = 'rlx-probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/run installs it)")
    return exe


def _headless(exe: str, *args: str) -> subprocess.CompletedProcess:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--force-device-scale-factor=1", *args], capture_output=True, text=True, timeout=120)


def test_html_report_of_two_smoke_runs_in_a_real_browser(smoke_store, rlx_cli, tmp_path, monkeypatch):
    """`rlx compare runs --last 2 --html report.html`: the page shows the runs' table, one decoded, captioned chart per
    default metric the runs logged (the issue's list: reward, pg_clipfrac, ppo_kl, KL to the reference, entropy,
    response length, the critic's fit), and the config diff with what GSPO changes."""
    from mlflow.tracking import MlflowClient

    exe = _chromium()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", smoke_store)
    monkeypatch.chdir(tmp_path)
    code, out, err = rlx_cli("compare", "runs", "--last", "2", "--html", "report.html")
    assert code == 0, err
    page = (tmp_path / "report.html").read_text()
    (tmp_path / "probe.html").write_text(page.replace("</body>", _PROBE + "</body>"))
    r = _headless(exe, f"--window-size={WIDTH},900", "--virtual-time-budget=10000", "--dump-dom",
                  (tmp_path / "probe.html").as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    seen = json.loads(r.stdout.split('<pre id="rlx-probe">', 1)[1].split("</pre>", 1)[0].replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"'))

    assert seen["headings"] == ["rlx compare runs", "Curves", "Config diff", "Health (rlx runs doctor)"]
    table, diff, *health = seen["tables"]  # then the doctor's section for each run
    assert health and all(t["shown"] for t in health)
    assert table["shown"] and table["first"] == ["run", "grpo-smoke", "gspo-smoke"]  # newest first
    assert table["head"][:6] == ["run", "algo", "status", "steps", "time", "reward"]

    client = MlflowClient(smoke_store)
    logged = set()
    for run in client.search_runs([e.experiment_id for e in client.search_experiments()]):
        logged |= set(run.data.metrics)
    issue = ["critic/score/mean", "actor/pg_clipfrac", "actor/ppo_kl", "actor/kl_loss", "actor/entropy",
             "response_length/mean", "critic/vf_loss", "critic/vf_explained_var"]
    expected = {k for k in issue if k in logged} | ({"perf/throughput"} & logged)  # every column of the table
    assert {"critic/score/mean", "actor/pg_clipfrac", "actor/ppo_kl", "actor/entropy"} <= expected
    captions = [c["caption"] for c in seen["charts"]]
    assert sorted(captions) == sorted(expected) and len(captions) == len(expected)
    for chart in seen["charts"]:
        assert chart["caption_shown"] and chart["img_shown"] and chart["decoded"], chart
    assert len(table["head"]) == 6 + len(expected) + 1  # one column per chart, then marks

    assert diff["shown"] and diff["head"] == ["key", "grpo-smoke", "gspo-smoke"]
    for key in ("actor_rollout_ref.actor.policy_loss.loss_mode", "actor_rollout_ref.actor.clip_ratio_high"):
        assert key in diff["first"]

    shot = tmp_path / "report.png"
    r = _headless(exe, f"--window-size={WIDTH},{min(seen['height'], 6000)}", f"--screenshot={shot}",
                  (tmp_path / "report.html").as_uri())
    assert r.returncode == 0 and shot.stat().st_size > 10_000, r.stderr[-2000:]
    if os.environ.get("RLX_REGEN_DOCS") == "1":
        shutil.copyfile(shot, SCREENSHOT)
    assert SCREENSHOT.is_file(), "run this test with RLX_REGEN_DOCS=1 to write docs/compare-report.png"
    assert "docs/compare-report.png" in (REPO / "README.md").read_text()
