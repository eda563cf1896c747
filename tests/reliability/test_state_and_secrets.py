"""Rows 21-23 of reliability.md section 6: a full disk, a read-only or corrupt state dir, and secrets in every sink.

The full disk is real: a 2 MiB tmpfs mounted in a private mount namespace (`unshare -rm`), filled, then handed to
rlx. Where mounting is not allowed, the write fails for real through RLIMIT_FSIZE instead (EFBIG, not ENOSPC).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import rel

pytestmark = pytest.mark.reliability

TMPFS = rel.can_mount_tmpfs()


def _in_full_tmpfs(mountpoint: Path, prepare: str, command: list[str], env: dict[str, str]) -> rel.Result:
    """Mount a 2 MiB tmpfs at `mountpoint` (private namespace), run `prepare`, fill it, then run `command`."""
    script = (f"set -e; mount -t tmpfs -o size=2m tmpfs {shlex.quote(str(mountpoint))}; {prepare}; "
              f"cat /dev/zero > {shlex.quote(str(mountpoint / 'filler'))} 2>/dev/null || true; "
              f"set +e; {shlex.join(command)}; echo \"EXIT=$?\" >&2; "
              f"ls -a {shlex.quote(str(mountpoint))} >&2; "
              f"for f in {shlex.quote(str(mountpoint))}/*.yaml; do echo \"SHA $f $(sha256sum < $f)\" >&2; done")
    p = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=180)
    code = int(next(line for line in p.stderr.splitlines() if line.startswith("EXIT="))[5:])
    return rel.Result(command, code, p.stdout, p.stderr, 0.0)


# ---- row 21 --------------------------------------------------------------------------------------------------------


def test_row21_disk_full_writing_the_resolved_config_keeps_the_old_file(tmp_path, rlx_env):
    earlier = "# the earlier resolved config\ntrainer:\n  total_epochs: 3\n"
    sha = hashlib.sha256(earlier.encode()).hexdigest()
    if TMPFS:
        mnt = tmp_path / "full"
        mnt.mkdir()
        target = mnt / "resolved.yaml"
        prepare = f"printf %s {shlex.quote(earlier)} > {shlex.quote(str(target))}"
        r = _in_full_tmpfs(mnt, prepare, [rel.RLX, "train", "--algo", "grpo", "--dry-run", "-o", str(target)],
                           rlx_env)
        assert r.code != 0 and "Traceback" not in r.text, r.text[-3000:]
        assert "No space left on device" in r.err and str(target) in r.err, r.err[-3000:]
        assert f"SHA {target} {sha}" in r.err, "the earlier config was changed"
        assert ".tmp" not in r.err.split("EXIT=")[1].split("SHA")[0], "a temp file was left behind"
    else:
        target = tmp_path / "resolved.yaml"
        target.write_text(earlier)
        r = rel.rlx("train", "--algo", "grpo", "--dry-run", "-o", str(target), env=rlx_env,
                    preexec=rel.limit_file_size(4096))
        rel.assert_clean_error(r, 1, mentions=(str(target),))
        assert hashlib.sha256(target.read_bytes()).hexdigest() == sha
        assert not list(tmp_path.glob(".resolved.yaml.*"))


def test_row21_disk_full_for_the_sqlite_store_and_the_run_record(tmp_path, rlx_env, ray_head):
    """The tracking store and rlx's state dir on a full disk: exit 3 naming the cause, nothing submitted."""
    if not TMPFS:
        pytest.skip("needs a tmpfs (root or an unprivileged user namespace); RLIMIT_FSIZE covers the config write")
    jobs = rel.jobs_client(ray_head.address)
    before = len(jobs.list_jobs())
    mnt = tmp_path / "full"
    mnt.mkdir()
    env = {**rlx_env, **rel.TESTJOB, "MLFLOW_TRACKING_URI": f"sqlite:///{mnt / 'mlflow.db'}",
           "RLX_HOME": str(mnt / "rlx-home")}
    r = _in_full_tmpfs(mnt, "true", [rel.RLX, "train", "--algo", "grpo", "--smoke", "--task", "copy", "--detach",
                                     "--address", ray_head.address], env)
    assert r.code == 3 and "Traceback" not in r.err, r.text[-3000:]
    assert r.err.startswith("error: ") or "\nerror: " in r.err
    assert "space" in r.err.lower() or "full" in r.err.lower(), r.err[-2000:]
    assert len(jobs.list_jobs()) == before


# ---- row 22 --------------------------------------------------------------------------------------------------------


def test_row22_read_only_state_dir(tmp_path, rlx_env, ray_head):
    if not TMPFS:
        pytest.skip("root ignores file modes; a read-only mount needs a user namespace")
    jobs = rel.jobs_client(ray_head.address)
    before = len(jobs.list_jobs())
    home = tmp_path / "ro-home"
    home.mkdir()
    script = (f"mount -t tmpfs -o ro,size=1m tmpfs {shlex.quote(str(home))} && "
              f"exec {shlex.join([rel.RLX, 'train', '--algo', 'grpo', '--smoke', '--task', 'copy', '--detach', '--address', ray_head.address])}")
    p = subprocess.run(["unshare", "-rm", "sh", "-c", script], env={**rlx_env, **rel.TESTJOB, "RLX_HOME": str(home)},
                       capture_output=True, text=True, timeout=180)
    r = rel.Result([], p.returncode, p.stdout, p.stderr, 0)
    rel.assert_clean_error(r, (1, 3), mentions=(str(home),))
    assert len(jobs.list_jobs()) == before, "a job was submitted with no run record"
    assert all(run.info.status != "RUNNING" for run in rel.all_runs(rlx_env))


def test_row22_corrupt_records_are_quarantined_not_overwritten(tmp_path, rlx_env, ray_head):
    """A truncated, a garbage and an empty record (copies of a real one): `rlx runs ls` warns, keeps the bytes aside
    as `record.json.corrupt`, and goes on."""
    r = rel.submit(rlx_env, ray_head.address, task="copy")
    assert r.code == 0, r.text[-3000:]
    rid = rel.run_id_of(r)
    runs = Path(rlx_env["RLX_HOME"]) / "runs"
    text = (runs / rid / "record.json").read_text()
    damaged = {"truncated": text[: len(text) // 2], "garbage": "\x00\x7f{{not json", "empty": ""}
    for name, bad in damaged.items():
        (runs / f"{rid[:8]}{name}").mkdir()
        (runs / f"{rid[:8]}{name}" / "record.json").write_text(bad)
    ls = rel.rlx("runs", "ls", env=rlx_env)
    assert ls.code == 0 and "Traceback" not in ls.text, ls.text[-2000:]
    assert rid[:12] in ls.out
    assert "corrupt" in ls.err.lower(), ls.err
    for name, bad in damaged.items():
        quarantined = list((runs / f"{rid[:8]}{name}").glob("record.json.corrupt*"))
        assert quarantined and quarantined[0].read_text() == bad, name
    rel.stop_all(rel.jobs_client(ray_head.address), [rid])


# ---- row 23 --------------------------------------------------------------------------------------------------------


def test_row23_secret_canaries_reach_no_sink(tmp_path, rlx_env, ray_head):
    """Canaries in the environment, in the config and in a URI; then every sink is searched byte by byte."""
    (tmp_path / "input").mkdir()
    exp = tmp_path / "input" / "exp.yaml"  # outside the store's folder, which is scanned below
    exp.write_text(
        "algo: grpo\n"
        "overrides:\n"
        f"  +algorithm.rlx.api_key: {rel.CONFIG_SECRET}\n"
        f"  +algorithm.rlx.endpoint: https://alice:{rel.URI_PASSWORD}@example.invalid/v1\n"
        "  +algorithm.rlx.max_tokens: 4242\n"
        "  +algorithm.rlx.hf: ${oc.env:HF_TOKEN}\n"
    )
    env = {**rlx_env, **rel.CANARY}
    r = rel.submit(env, ray_head.address, "-c", str(exp), task="copy", detach=False, timeout=240)
    assert r.code == 0, r.text[-3000:]
    rid = rel.run_id_of(r)
    rel.assert_no_canary(r.text, "rlx's stdout/stderr")

    jobs = rel.jobs_client(ray_head.address)
    job = rel.job_of(jobs, rid)
    ray_view = json.dumps([job.entrypoint, job.metadata, job.runtime_env, [
        [j.entrypoint, j.metadata, j.runtime_env] for j in jobs.list_jobs()]], default=str)
    rel.assert_no_canary(ray_view, "Ray job metadata/env_vars/entrypoint")
    rel.assert_no_canary(jobs.get_job_logs(job.submission_id), "the job's driver log")

    db = Path(rlx_env["MLFLOW_TRACKING_URI"][len("sqlite:///"):])
    leaks = [f"{db}: {c[:6]}..." for c in rel.canaries() if c.encode() in db.read_bytes()]
    leaks += rel.scan_tree(db.parent / "mlruns") + rel.scan_tree(Path(rlx_env["RLX_HOME"]))
    assert list((db.parent / "mlruns").rglob("*.yaml")), "no artifacts were scanned"
    assert not leaks, leaks

    for args in (("runs", "show", rid), ("runs", "logs", rid), ("runs", "ls")):
        out = rel.rlx(*args, env=env, timeout=60)
        rel.assert_no_canary(out.text, f"rlx {' '.join(args)}")

    run = rel.mlflow_client(rlx_env).get_run(rid)
    everything = json.dumps([run.data.params, run.data.tags])
    assert "4242" in everything, "max_tokens was redacted"
    assert "${oc.env:HF_TOKEN}" in everything or "oc.env:HF_TOKEN" in open(
        rel.mlflow_client(rlx_env).download_artifacts(rid, "rlx/resolved.yaml")).read()


def test_row23_password_in_tracking_uri_is_refused_without_echoing_it(rlx_env, ray_head):
    url = f"http://alice:{rel.URI_PASSWORD}@127.0.0.1:{rel.free_port()}"
    r = rel.submit(rlx_env, ray_head.address, "--tracking-uri", url)
    rel.assert_clean_error(r, (1, 3))
    assert "MLFLOW_TRACKING_PASSWORD" in r.err or "password" in r.err.lower()
    assert not os.path.exists(rlx_env["RLX_HOME"]) or not list(Path(rlx_env["RLX_HOME"]).rglob("record.json"))
