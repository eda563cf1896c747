"""Steps 2-6 of a launch (see `rlx.launch`): tracking store, cluster, MLflow run + record, submit, follow."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rlx import __version__
from rlx.errors import EXIT_INTERRUPTED, UnreachableError
from rlx.launch import SMOKE_ENTRY_ENV, Plan, capture, records
from rlx.launch.jobs import JobNotFound, Jobs, RayUnreachable, submission_id_for
from rlx.launch.lifecycle import (
    Display,
    exit_code,
    finish,
    follow,
    reconcile,
    stop_job,
    token_from_env,
    tracking_pending,
)
from rlx.launch.records import RunRecord, State
from rlx.redact import redact, redact_text
from rlx.track import store as tracking

STOP_WAIT = 45.0  # seconds to wait for a stopped job to reach a terminal state


def _note(plan: Plan, text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _check_resources(plan: Plan, jobs: Jobs) -> None:
    """Refuse a job the cluster cannot place now (verl would wait for the GPUs forever). Autoscaling clusters that
    add nodes on demand can skip this with RLX_SKIP_RESOURCE_CHECK=1."""
    if os.environ.get("RLX_SKIP_RESOURCE_CHECK", "") not in ("", "0"):
        return
    have = jobs.resources()
    if plan.gpus_needed and have.get("GPU", 0.0) < plan.gpus_needed:
        nnodes = plan.resolved.get("trainer.nnodes", 1)
        per_node = plan.resolved.get("trainer.n_gpus_per_node", 0)
        raise UnreachableError(
            f"the cluster at {jobs.address} has {have.get('GPU', 0.0):g} GPU(s); this config asks for "
            f"{plan.gpus_needed} (trainer.nnodes={nnodes} x trainer.n_gpus_per_node={per_node}). "
            "Nothing was submitted: the job would wait for them forever",
            where="trainer.n_gpus_per_node",
            hint="run the CPU smoke version with --smoke, or pass --address of a cluster with enough GPUs "
            "(an autoscaling cluster that adds GPU nodes on demand: set RLX_SKIP_RESOURCE_CHECK=1)",
        )
    if have.get("CPU", 0.0) < 1:
        raise UnreachableError(
            f"the cluster at {jobs.address} reports no CPU for the job's driver",
            hint="check `ray status` on the cluster",
        )


def _tags(plan: Plan, address: str) -> dict[str, str]:
    resolved = plan.resolved
    tags = {
        "rlx.algo": resolved.algorithm.name if resolved.algorithm else "",
        "rlx.preset": resolved.preset.name if resolved.preset else "",
        "rlx.version": __version__,
        "verl.version": capture.package_version("verl"),
        "rlx.smoke": str(plan.smoke).lower(),
        "rlx.cluster_address": address,
        "rlx.job_status": "PREPARED",
        "rlx.entrypoint": resolved.entrypoint
        if not plan.smoke or plan.verl_engine
        else (os.environ.get(SMOKE_ENTRY_ENV) or "rlx.smoke"),
    }
    if plan.smoke:
        tags["rlx.engine"] = plan.engine
    if resolved.experiment is not None:
        tags["rlx.experiment_file"] = str(resolved.experiment.source)
    return {k: v for k, v in redact(tags, secrets=plan.secrets).items() if v != ""}


def _trusted_tags(git: capture.GitState | None) -> dict[str, str]:
    """Tags rlx computes itself and that redaction would mangle (a git sha is 40 hex digits, like a W&B key)."""
    if git is None:
        return {}
    return {
        "mlflow.source.git.commit": git.commit,
        "rlx.git.commit": git.commit,
        "rlx.git.dirty": str(git.dirty).lower(),
    }


def _params(plan: Plan) -> dict[str, str]:
    resolved = plan.resolved
    values: dict[str, Any] = {
        "algo": resolved.algorithm.name if resolved.algorithm else None,
        "preset": resolved.preset.name if resolved.preset else None,
        "entrypoint": resolved.entrypoint,
        "smoke": plan.smoke,
    }
    if plan.smoke:
        values.update(task=plan.task, steps=plan.steps, seed=plan.seed, engine=plan.engine)
    for ch in resolved.changed():
        values[f"set/{ch.key}"] = None if type(ch.value).__name__ == "_Absent" else ch.value
    params = tracking.params_for(values, list(plan.secrets))
    if plan.verl_engine:  # the shrunk sizes, under rlx's namespace (verl logs its own keys with the CPU values)
        params.update(plan.cpu.params())
    return params


def _artifacts(plan: Plan, entrypoint: str, git: capture.GitState | None) -> dict[str, str]:
    import json

    changes = [c.to_dict() for c in plan.resolved.changed()]
    for c in changes:
        if type(c["value"]).__name__ == "_Absent":
            c["value"] = None
    arts = {
        "rlx/resolved.yaml": plan.config_yaml,
        "rlx/provenance.json": json.dumps(redact(changes, secrets=plan.secrets), indent=2, default=str) + "\n",
        "rlx/command.txt": redact_text(
            "rlx " + shlex.join(sys.argv[1:]) + "\n\n# job entrypoint\n" + entrypoint + "\n", plan.secrets
        ),
        "rlx/pip-freeze.txt": redact_text(capture.installed_packages(), plan.secrets),
    }
    if git is not None and git.dirty:
        arts["rlx/git.diff"] = redact_text(git.diff, plan.secrets)
    return arts


def _runtime_env(plan: Plan, run_id: str, config_dir: Path) -> dict[str, Any]:
    from rlx.launch.submit_cmd import base_env

    env = base_env(plan.tracking_uri, run_id)
    if plan.smoke and plan.on_this_machine:  # what the job cannot send waits next to the record (`rlx runs sync`)
        from rlx.track.journal import JOURNAL_ENV

        env[JOURNAL_ENV] = str(records.run_dir(run_id) / records.JOB_JOURNAL)
    runtime_env: dict[str, Any] = {"env_vars": env}
    if plan.verl_engine:
        from rlx.verl_cpu.engine import job_env

        env.update(job_env())
    if plan.smoke and not plan.on_this_machine:
        runtime_env["working_dir"] = str(config_dir)  # ships resolved.yaml (a few KiB) to the remote node
    return runtime_env


def _create(plan: Plan, client, address: str, head) -> tuple[RunRecord, str, dict[str, Any]]:
    """Step 4: the MLflow run, its provenance and the PREPARED record (written before anything is submitted)."""
    git = capture.git_state()
    exp_id = tracking.experiment_id(client, plan.experiment, plan.tracking_uri)
    tags = {**_tags(plan, address), **_trusted_tags(git)}
    run_id = tracking.create_run(client, exp_id, run_name=plan.run_name, tags=tags)
    sid = submission_id_for(run_id)
    rdir = records.run_dir(run_id)
    config_path = rdir / "job" / "resolved.yaml"  # alone in its folder: a remote job gets that folder as working_dir
    job_config = "resolved.yaml" if plan.smoke and not plan.on_this_machine else str(config_path)
    entrypoint = shlex.join(plan.argv(job_config))
    record = RunRecord(
        run_id=run_id,
        submission_id=sid,
        experiment=plan.experiment,
        experiment_id=exp_id,
        tracking_uri=plan.tracking_uri,
        address=address,
        embedded_head=head is not None,
        algo=plan.resolved.algorithm.name if plan.resolved.algorithm else None,
        preset=plan.resolved.preset.name if plan.resolved.preset else None,
        smoke=plan.smoke,
        run_name=plan.run_name,
        entrypoint=redact_text(entrypoint, plan.secrets),
        config_path=str(config_path),
        token_path=str(head.tmp / "auth_token") if head is not None else None,
        head_pids=sorted(head.pids) if head is not None else [],
    )
    from rlx.fsutil import atomic_write_text

    try:
        atomic_write_text(config_path, plan.config_yaml)
        records.save(record, State.PREPARED, create=True)
        tracking.log_launch(
            client,
            run_id,
            params=_params(plan),
            artifacts=_artifacts(plan, entrypoint, git),
            tags={"rlx.submission_id": sid},
        )
    except BaseException:
        finish(record, State.ABORTED, client=client, message="launch failed before submission")
        raise
    return record, entrypoint, _runtime_env(plan, run_id, config_path.parent)


def _submit(plan: Plan, jobs: Jobs, record: RunRecord, entrypoint: str, runtime_env: dict[str, Any], client) -> None:
    """Step 5. If the POST fails or is interrupted, ask Ray whether the job exists before giving up on it."""
    metadata = redact(
        {
            "rlx.run_id": record.run_id,
            "rlx.version": __version__,
            "rlx.experiment": plan.experiment,
            "rlx.algo": record.algo or "",
            "rlx.run_name": plan.run_name or "",
        },
        secrets=plan.secrets,
    )
    records.save(record, State.SUBMITTING)
    try:
        jobs.submit(
            entrypoint=entrypoint,
            submission_id=record.submission_id,
            run_id=record.run_id,
            metadata={k: str(v) for k, v in metadata.items()},
            runtime_env=runtime_env,
            entrypoint_num_cpus=1,
        )
    except BaseException as e:
        try:
            reconcile(record, jobs=jobs, client=client)  # 404: ABORTED; found: SUBMITTED (adopted)
        except UnreachableError as again:
            if isinstance(again, RayUnreachable):  # no connection: the request cannot have reached Ray either
                finish(record, State.ABORTED, client=client, message=again.message)
            # else (no answer): it may have landed; the record stays SUBMITTING and `rlx runs ls` settles it
        except Exception:  # noqa: BLE001 - keep the original error
            pass
        if record.state is not State.SUBMITTED or isinstance(e, KeyboardInterrupt):
            raise
    else:
        records.save(record, State.SUBMITTED, job_status="PENDING")
    client.set_tag(record.run_id, "rlx.job_status", record.job_status or "PENDING")


def _stop_and_settle(jobs: Jobs, record: RunRecord, client) -> None:
    """Stop the job and wait (bounded) for Ray to report it ended, then reconcile."""
    try:
        stop_job(jobs, record, client, wait=STOP_WAIT)
    except Exception:  # noqa: BLE001 - the head is about to go: whatever Ray says now, the run is over
        pass
    if not record.state.terminal:
        try:
            finish(
                record,
                State.STOPPED,
                client=client,
                job_status="STOPPED",
                message="stopped with the local Ray head when rlx exited",
            )
        except Exception:  # noqa: BLE001 - Ray is down too: the record stays open and `rlx runs ls` settles it
            pass


def _summary(plan: Plan, record: RunRecord, code: int) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "submission_id": record.submission_id,
        "state": record.state.value,
        "job_status": record.job_status,
        "exit_code": code,
        "experiment": record.experiment,
        "tracking_uri": redact_text(record.tracking_uri),
        "address": record.address,
        "run_dir": str(records.run_dir(record.run_id)),
        "message": record.message,
        "tracking_pending": tracking_pending(record),
    }


def _report_end(plan: Plan, record: RunRecord, code: int) -> int:
    from rlx.render import emit_json

    pending = tracking_pending(record)
    if pending:  # the run ended as Ray says; MLflow gets the rest later (stderr in every format)
        _note(
            plan,
            f"warning: the tracking store {redact_text(record.tracking_uri)} did not answer at the end: "
            f"{pending} tracking calls of this run wait in {records.run_dir(record.run_id)}\n"
            f"hint: `rlx runs sync {record.run_id}` sends them once it answers (`rlx runs ls` tries too)",
        )
    if plan.json_mode:
        emit_json(_summary(plan, record, code))
        return code
    short = record.run_id
    where = f"MLflow run {short} in experiment '{record.experiment}' ({redact_text(record.tracking_uri)})"
    what = "run" if plan.local else f"job {record.submission_id}"
    if record.state is State.SUCCEEDED:
        _note(plan, f"rlx: {what} succeeded. {where}")
    else:
        msg = f" ({record.message.splitlines()[0][:300]})" if record.message else ""
        headline = f"{what} ended {record.state.value}{msg}"
        if record.state is State.FAILED and (record.message or "").startswith("failed"):  # rlx.launch.failure's line
            headline = f"{what} {record.message}"
        _note(
            plan,
            f"error: {headline}\n  --> {where}\n"
            f"hint: `rlx runs show {short}` shows it; the last log lines are the artifact "
            "rlx/job-log-tail.txt",
        )
    return code


def _announce_engine(plan: Plan) -> None:
    """Say (on stderr, in every format) what this engine proves; for the verl engine, build its tiny model and data
    and show the shrunk keys."""
    from rlx.verl_cpu.engine import PROVES

    _note(plan, f"rlx: engine {plan.engine}: {PROVES[plan.engine]}")
    if plan.verl_engine:
        from rlx.verl_cpu.engine import write_assets

        write_assets(plan.cpu_assets)
        data = "the experiment's own data" if plan.cpu.own_data else f"task {plan.task}"
        _note(
            plan,
            f"rlx: {plan.resolved.entrypoint} on CPU, {plan.cpu.steps} steps, {data}; shrunk keys (every "
            "other key is the resolved config's):\n" + plan.cpu.table(),
        )


def launch(plan: Plan) -> int:
    """Steps 2-6 against the embedded head or a cluster; returns the exit code."""
    from rlx.launch.cluster import LocalHead

    client = tracking.connect(plan.tracking_uri)
    head = None
    record: RunRecord | None = None
    jobs: Jobs | None = None
    try:
        if plan.smoke:  # before any head starts: building the verl engine's assets can fail (an unwritable cache)
            _announce_engine(plan)
        if plan.address is None:
            _note(plan, "rlx: starting a local Ray head on 127.0.0.1 (stopped when this command ends)")
            if plan.verl_engine:
                from rlx.verl_cpu.engine import HEAD_CPUS, HEAD_GPUS, HEAD_SYSTEM_ENV

                head = LocalHead(
                    num_cpus=HEAD_CPUS,
                    num_gpus=HEAD_GPUS,
                    env_exclude=tracking.set_by_rlx(),
                    system_env=HEAD_SYSTEM_ENV,
                ).start()
            else:
                head = LocalHead(env_exclude=tracking.set_by_rlx()).start()
            jobs = Jobs(head.address, token=head.token)
        else:
            jobs = Jobs(plan.address, token=token_from_env())
            if tracking.is_local_store(plan.tracking_uri) and not plan.on_this_machine:
                _note(
                    plan,
                    f"warning: the job on {jobs.address} will write to {plan.tracking_uri} on the cluster's "
                    "node; use a shared path or a tracking server (--tracking-uri http://HOST:5000)",
                )
        if skew := jobs.version_skew():
            _note(plan, f"warning: {skew}")
        _check_resources(plan, jobs)
        record, entrypoint, runtime_env = _create(plan, client, jobs.address, head)
        _submit(plan, jobs, record, entrypoint, runtime_env, client)
        short = record.run_id
        if plan.detach:
            if plan.json_mode:
                from rlx.render import emit_json

                emit_json(_summary(plan, record, 0))
            else:
                print(record.run_id)
                _note(
                    plan,
                    f"rlx: submitted {record.submission_id} to {jobs.address}. "
                    f"Follow: rlx runs logs {short} -f   Stop: rlx runs stop {short}",
                )
            return 0
        _note(plan, f"rlx: run {short} submitted as {record.submission_id} to {jobs.address}")
        try:
            with Display(json_mode=plan.json_mode, secrets=plan.secrets) as display:
                health = plan.health(plan.tracking_uri, record.run_id) if plan.health else None
                final = follow(jobs, record, display, client=client, health=health)
        except KeyboardInterrupt:
            if head is not None:
                _note(plan, "\nrlx: interrupted: stopping the job (the local Ray head ends with this command)")
                _stop_and_settle(jobs, record, client)
            else:
                _note(
                    plan,
                    f"\nrlx: detached; the job keeps running on {jobs.address}.\n"
                    f"  re-attach: rlx runs logs {short} -f\n  stop:      rlx runs stop {short}",
                )
            return EXIT_INTERRUPTED
        if final == "LOST":
            finish(record, State.LOST, client=client, message=f"lost contact with Ray at {jobs.address}")
        else:
            reconcile(record, jobs=jobs, client=client)
        return _report_end(plan, record, exit_code(record.state))
    finally:
        if head is not None:
            try:
                if record is not None and not record.state.terminal and jobs is not None:
                    _stop_and_settle(jobs, record, client)
            finally:
                head.stop()


def launch_local(plan: Plan) -> int:
    """`--smoke --local`: the smoke engine in this process, no Ray; rlx owns the MLflow run and logs each step."""
    try:
        from rlx.smoke.engine import run as smoke_run
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("rlx.smoke"):
            raise
        from rlx.errors import UsageError

        raise UsageError(
            "the CPU smoke engine is not available in this build",
            hint="run without --local against a cluster, or install rlx with its smoke engine",
        ) from None
    from mlflow.entities import Metric

    client = tracking.connect(plan.tracking_uri)
    record, _, _ = _create(plan, client, "local", None)
    records.save(record, State.SUBMITTED, job_status="RUNNING")
    client.set_tag(record.run_id, "rlx.job_status", "RUNNING")
    _log_verl_params(client, record.run_id, plan)
    from rlx.launch.lifecycle import Status

    status = Status("RUNNING", started=time.monotonic())
    doctor = plan.health(plan.tracking_uri, record.run_id) if plan.health else None

    def on_step(step: int, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items() if v is not None]
        for i in range(0, len(batch), 1000):
            client.log_batch(record.run_id, metrics=batch[i : i + 1000], synchronous=True)
        status.step = step
        status.reward = metrics.get("critic/score/mean", status.reward)
        if doctor is not None:
            doctor.apply(status, note=None if plan.json_mode else lambda text: _note(plan, text))
        if not plan.json_mode:
            _note(plan, f"[rlx] {status.line()}")

    try:
        smoke_run(plan.resolved.config, task=plan.task, steps=plan.steps, seed=plan.seed, on_step=on_step)
    except KeyboardInterrupt:
        finish(record, State.STOPPED, client=client, job_status="STOPPED", message="interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED
    except Exception as e:
        import traceback

        finish(
            record,
            State.FAILED,
            client=client,
            job_status="FAILED",
            message=f"{type(e).__name__}: {e}",
            logs=traceback.format_exc(),
        )
        if os.environ.get("RLX_VERBOSE"):
            raise
        return _report_end(plan, record, 4)
    finish(record, State.SUCCEEDED, client=client, job_status="SUCCEEDED")
    return _report_end(plan, record, 0)


def _log_verl_params(client, run_id: str, plan: Plan) -> None:
    """verl's own flattened config params, as verl's MLflow logger would log them for a GPU run."""
    import yaml
    from mlflow.entities import Param

    from rlx.launch.testjob import verl_style_params

    params = verl_style_params(yaml.safe_load(plan.config_yaml))
    items = list(params.items())
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=[Param(k, v) for k, v in items[i : i + 100]], synchronous=True)


__all__ = ["launch", "launch_local", "JobNotFound"]
