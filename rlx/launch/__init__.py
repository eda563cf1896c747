"""Launch: a validated config becomes a Ray job tracked in an MLflow run that rlx creates first.

`run_train()` is what `rlx train` calls after resolving and validating. The order matters, so that a failure at any
point leaves nothing half-done (no job without a run, no run left RUNNING):

1. refuse a config with validation errors (exit 1); build and check the job's command line offline: every override
   goes through Hydra's parser, literal secrets are replaced (with a warning) and the line is built with `shlex.join`;
   with no cluster address and no GPU on this machine, a GPU run stops here (exit 3, offering `--smoke`/`--address`);
2. connect to the MLflow store (exit 3 if unreachable; nothing was submitted);
3. start the embedded Ray head (no `--address` and no `RAY_ADDRESS`) or connect to the cluster (exit 3 if
   unreachable), and check it has the GPUs the config asks for (`trainer.nnodes * trainer.n_gpus_per_node`; exit 3);
4. create the MLflow run in the experiment named `trainer.project_name` (tags, `rlx/` params, artifacts) and write
   the local run record (PREPARED) with the submission id derived from the run id;
5. mark the record SUBMITTING, submit, mark it SUBMITTED;
6. follow the logs under a status line until the job ends (exit 0 on success, 4 on failure), or return at once with
   `--detach`.

The embedded head lives only as long as this process, so with it Ctrl-C *stops* the job (its MLflow run ends KILLED)
and `--detach` is refused; against a cluster (`--address`), Ctrl-C detaches and the job keeps running.

Entrypoints. GPU runs run verl (`python -m verl.trainer.main_ppo ...` or `rlx.verl_entry`) with `mlflow` added to
`trainer.logger`; `MLFLOW_TRACKING_URI` and `MLFLOW_RUN_ID` in the job's environment make verl log into rlx's run.
The driver reserves one CPU and no GPU: verl places its GPU workers itself, through placement groups, and GPUs
reserved for the driver process would be taken from them. `--smoke` runs `python -m rlx.smoke --config FILE` (the
resolved config, secrets redacted). `RLX_SMOKE_ENTRY=module` swaps that module for a diagnostic one with the same
arguments, e.g. `rlx.launch.testjob` (what the integration tests use). `RLX_JOB_PYTHON` sets the job's interpreter
(default: this interpreter for a cluster on this machine, `python` for a remote one).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from rlx.errors import ConfigError, UnreachableError, UsageError

SMOKE_ENTRY_ENV = "RLX_SMOKE_ENTRY"
JOB_PYTHON_ENV = "RLX_JOB_PYTHON"


@dataclass
class Plan:
    """Everything decided before touching the network."""

    resolved: Any
    smoke: bool
    local: bool
    task: str
    steps: int | None
    seed: int
    address: str | None  # None: embedded head
    detach: bool
    tracking_uri: str
    json_mode: bool
    experiment: str
    run_name: str | None
    gpus_needed: int
    overrides: list[str] = field(default_factory=list)  # GPU runs: validated, secrets replaced
    secrets: tuple[str, ...] = ()
    redacted_paths: list[str] = field(default_factory=list)
    config_yaml: str = ""  # the resolved config the smoke job reads (secrets replaced)
    engine: str = "rlx"  # with --smoke: "rlx" (rlx's own loop) or "verl" (verl's trainer on CPU)
    cpu: Any = None  # engine verl: the rlx.verl_cpu.sizes.CpuPlan
    cpu_assets: dict[str, str] = field(default_factory=dict)  # engine verl: where the tiny model and data go
    # (tracking_uri, run_id) -> a lifecycle.Health that judges the run while it is followed (the CLI's LiveDoctor)
    health: Callable[[str, str], Any] | None = None

    @property
    def verl_engine(self) -> bool:
        return self.smoke and self.engine == "verl"

    @property
    def on_this_machine(self) -> bool:
        return self.address is None or is_loopback(self.address)

    def python(self) -> str:
        return os.environ.get(JOB_PYTHON_ENV) or (sys.executable if self.on_this_machine else "python")

    def argv(self, config_path: str) -> list[str]:
        """The job's command, as a list (the entrypoint is `shlex.join` of it: Ray runs it through a shell)."""
        if self.verl_engine:  # the very launcher a GPU cluster runs, plus the CPU overrides (Hydra keeps the last)
            return [self.python(), "-m", self.resolved.entrypoint, *self.overrides, *self.cpu.overrides]
        if self.smoke:
            module = os.environ.get(SMOKE_ENTRY_ENV) or "rlx.smoke"
            argv = [self.python(), "-m", module, "--config", config_path, "--task", self.task, "--seed", str(self.seed)]
            if self.steps is not None:
                argv += ["--steps", str(self.steps)]
            return argv
        return [self.python(), "-m", self.resolved.entrypoint, *self.overrides]


def is_loopback(address: str) -> bool:
    host = urlparse(address if "://" in address else f"http://{address}").hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def run_train(
    resolved,
    report,
    *,
    smoke: bool = False,
    local: bool = False,
    task: str = "copy",
    steps: int | None = None,
    seed: int = 0,
    address: str | None = None,
    detach: bool = False,
    tracking_uri: str | None = None,
    format: Any = "text",
    engine: str = "rlx",
    health: Callable[[str, str], Any] | None = None,
) -> int:
    """Launch a resolved, validated config; returns the exit code (0 success, 4 job failed, 130 interrupted).

    Raises `RlxError`s for everything a user can fix (invalid config 1, usage 2, unreachable or no resources 3).
    """
    plan = prepare(
        resolved,
        report,
        smoke=smoke,
        local=local,
        task=task,
        steps=steps,
        seed=seed,
        address=address,
        detach=detach,
        tracking_uri=tracking_uri,
        format=format,
        engine=engine,
    )
    plan.health = health
    from rlx.launch.run import launch, launch_local

    return launch_local(plan) if plan.local else launch(plan)


def prepare(
    resolved,
    report,
    *,
    smoke: bool,
    local: bool,
    task: str,
    steps: int | None,
    seed: int,
    address: str | None,
    detach: bool,
    tracking_uri: str | None,
    format: Any,
    engine: str = "rlx",
) -> Plan:
    """Step 1: every offline check and decision. No network, no files."""
    from rlx.launch.cluster import local_gpu_count
    from rlx.redact import secret_values
    from rlx.track.store import normalize_uri

    if report is not None and getattr(report, "errors", None):
        _print_report(report)
        raise ConfigError(
            f"the config has {len(report.errors)} validation error(s); nothing was launched",
            hint="fix them (see above), or `--ignore CODE` a rule you accept",
        )
    if local and not smoke:
        raise UsageError(
            "--local needs --smoke", hint="`rlx train --algo NAME --smoke --local` runs the CPU engine here"
        )
    address = address or os.environ.get("RAY_ADDRESS") or None
    engine = str(getattr(engine, "value", engine))
    if engine not in ("rlx", "verl"):
        raise UsageError(f"unknown engine {engine!r}", where="--engine", hint="use --engine rlx or --engine verl")
    if engine == "verl" and not smoke:
        raise UsageError(
            "--engine picks the CPU smoke engine: it needs --smoke",
            hint="`rlx train --algo NAME --smoke --engine verl` runs this config through verl on CPU",
        )
    if engine == "verl" and local:
        raise UsageError(
            "--engine verl runs verl's launcher as a Ray job: it takes no --local",
            hint="drop --local (rlx starts a local Ray head), or use --engine rlx --local",
        )
    if engine == "verl" and address is not None and not is_loopback(address):
        raise UsageError(
            "--engine verl rehearses on this machine's CPU: it needs the local head or a cluster on 127.0.0.1",
            where="--address",
            hint="drop --address (and unset RAY_ADDRESS); on a GPU cluster run without --smoke",
        )
    if local and (address or detach):
        raise UsageError(
            "--local runs in this process: it takes neither --address nor --detach",
            hint="drop --local to run the smoke job on the cluster",
        )
    if detach and address is None and not local:
        raise UsageError(
            "--detach needs a cluster: the local head rlx starts ends with this command",
            hint="start one (`ray start --head --dashboard-host 127.0.0.1`) and pass --address "
            "http://127.0.0.1:8265, or run without --detach",
        )
    nnodes = int(resolved.get("trainer.nnodes", 1) or 1)
    per_node = int(resolved.get("trainer.n_gpus_per_node", 0) or 0)
    gpus_needed = 0 if smoke else nnodes * per_node
    if not smoke and address is None and local_gpu_count() < max(gpus_needed, 1):
        raise UnreachableError(
            f"this config asks for {gpus_needed} GPU(s) (trainer.nnodes={nnodes} x trainer.n_gpus_per_node="
            f"{per_node}), this machine has {local_gpu_count()}, and no cluster was given",
            where="trainer.n_gpus_per_node",
            hint="run the CPU smoke version with --smoke, or pass --address http://HEAD:8265 (or set RAY_ADDRESS) "
            "of a cluster with GPUs",
        )
    container = resolved.container()
    secrets = tuple(secret_values(container, os.environ))
    plan = Plan(
        resolved=resolved,
        smoke=smoke,
        local=local,
        task=task,
        steps=steps,
        seed=seed,
        address=address,
        detach=detach,
        tracking_uri=normalize_uri(tracking_uri),
        json_mode=str(getattr(format, "value", format)) == "json",
        experiment=str(resolved.get("trainer.project_name") or "rlx"),
        run_name=resolved.get("trainer.experiment_name"),
        gpus_needed=gpus_needed,
        secrets=secrets,
        engine=engine,
    )
    _check_tracking_uri(plan)
    plan.config_yaml, plan.redacted_paths = _job_config(container, secrets)
    if not smoke or engine == "verl":
        plan.overrides, more = job_overrides(resolved, secrets)
        plan.redacted_paths = sorted(set(plan.redacted_paths) | set(more))
    if engine == "verl":
        from rlx.verl_cpu.engine import cpu_plan

        plan.cpu, plan.cpu_assets = cpu_plan(resolved, task=task, steps=steps, seed=seed)
    shlex.join(plan.argv("resolved.yaml"))  # every part must be a str
    for path in plan.redacted_paths:
        sys.stderr.write(
            f"warning: {path} holds a literal secret; it is neither sent to the job nor logged "
            "(replaced by ***REDACTED***)\nhint: write `${oc.env:NAME}` instead and set NAME on the "
            "cluster's nodes\n"
        )
    return plan


def _print_report(report) -> None:
    from rlx.render import err_console
    from rlx.validate.report import render_text

    render_text(report, err_console())


def _check_tracking_uri(plan: Plan) -> None:
    parsed = urlparse(plan.tracking_uri)
    if parsed.password:
        raise ConfigError(
            "the tracking URI carries a password, which would reach the job's environment and Ray's dashboard",
            where="--tracking-uri",
            hint="drop `user:pass@` and set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD on the nodes",
        )


def _job_config(container: dict, secrets: tuple[str, ...]) -> tuple[str, list[str]]:
    """The resolved config as the job reads it: YAML with every secret replaced; and the paths that were."""
    import yaml

    from rlx.redact import redact, secret_paths
    from rlx.resolve import flatten

    paths = secret_paths(flatten(container))
    text = yaml.safe_dump(redact(container, secrets=secrets), sort_keys=False, default_flow_style=False, width=120)
    return text, paths


def job_overrides(resolved, secrets: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """verl's overrides for the GPU job: `mlflow` added to `trainer.logger`, literal secrets replaced, each one
    checked with Hydra's parser. Returns (overrides, paths whose values were replaced)."""
    from rlx.redact import redact
    from rlx.resolve.overrides import Op, parse, render_value

    logger = resolved.get("trainer.logger") or []
    logger = [logger] if isinstance(logger, str) else list(logger)
    if "mlflow" not in logger:
        logger.append("mlflow")
    texts = [t for t in resolved.override_list() if not t.startswith("trainer.logger=")]
    texts.append(f"trainer.logger={render_value(logger)}")
    out, replaced = [], []
    for ov in parse(texts):
        if ov.op is Op.DELETE:
            out.append(ov.render())
            continue
        value = redact(ov.value, key=ov.path, secrets=secrets)
        if value != ov.value:
            replaced.append(ov.path)
        out.append(f"{ov.op.value}{ov.path}={render_value(value)}")
    parse(out)  # what is submitted must parse too
    return out, replaced
