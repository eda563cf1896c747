"""CLI command modules. Each keeps heavy imports inside its functions so `rlx --help` stays fast."""

from __future__ import annotations


def launch_hook(resolved, report, **options) -> int:
    """Launch a validated config. Implemented by `rlx.launch` (Ray Jobs + MLflow) and `rlx.smoke` (CPU engine)."""
    try:
        from rlx.launch import run_train
    except ModuleNotFoundError as e:
        if e.name != "rlx.launch":
            raise
        from rlx.errors import UsageError

        raise UsageError(
            "launching is not available in this build",
            hint="use --dry-run to print the resolved config and the launch command",
        ) from None
    from rlx.resolve.naming import name_run

    # Named once, here, before anything is created: verl's experiment_name, the MLflow run and every label agree.
    name_run(resolved, task=options.get("task") if options.get("smoke") else None)
    from rlx.doctor.live import LiveDoctor

    return run_train(resolved, report, health=LiveDoctor, **options)
