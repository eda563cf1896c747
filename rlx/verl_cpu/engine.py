"""`rlx train ... --smoke --engine verl`: the user's exact config through verl 0.9.1's own launcher, on CPU.

The job is the command a GPU cluster would run (`python -m verl.trainer.main_ppo ...`, or `rlx.verl_entry` for the
plugin algorithms), with the config's own overrides first and the CPU overrides of `rlx.verl_cpu.sizes` after them.
Its environment loads `rlx.verl_cpu.plugin` into every verl process. The embedded Ray head declares the scheduling
resources verl asks for (verl's `ray_kwargs.ray_init` is ignored when it joins an existing cluster): 16 logical CPUs,
since TransferQueue's controller and storage unit each take `num_cpus=1` (transfer_queue/controller.py:943,
storage/simple_storage.py:722), and one fake GPU, since verl's resource pools count GPUs only
(single_controller/ray/base.py:226-243). Ray's CPUs are scheduling tokens: the processes share the real cores.

What it proves: this config runs through verl's trainer, workers, data loader, agent loop, reward loop and weight
sync. What it does not: that the algorithm learns (that is `--engine rlx`), or anything about vLLM, NCCL or GPU memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

HEAD_CPUS = 16
HEAD_GPUS = 1
CACHE_ENV = "RLX_CACHE_DIR"
# Ray prestarts one idle worker per logical CPU when the first driver connects: 16 interpreters on 2 cores, competing
# with verl's own actors at the slowest moment of the run. verl starts the workers it needs itself.
HEAD_SYSTEM_ENV = {"RAY_prestart_worker_first_driver": "0", "RAY_enable_worker_prestart": "0"}
PROVES = {
    "rlx": "rlx's own loop with verl's loss and estimator functions: proves the algorithm's maths trains (seconds)",
    "verl": "verl's own trainer on CPU (the launcher a GPU cluster runs): proves this exact config runs through "
    "verl, not that it learns (about a minute)",
}


def cache_dir() -> Path:
    """Where the tiny model and task data live: rlx's cache (RLX_CACHE_DIR, else XDG_CACHE_HOME/rlx, else ~/.cache/rlx)."""
    from rlx.resolve import cache_dir as rlx_cache

    return rlx_cache() / "verl-cpu"


def has_critic(get) -> bool:
    return get("algorithm.adv_estimator", None) == "gae" or get("critic.enable", None) is True


def cpu_plan(resolved, *, task: str, steps: int | None, seed: int) -> tuple[Any, dict[str, str]]:
    """The CPU plan for a resolved config and the paths its assets will have (nothing is written here)."""
    from rlx.smoke.tasks import get_task
    from rlx.verl_cpu import sizes

    t = get_task(task)
    root = cache_dir()
    assets = {
        "model": str(root / "tiny-qwen2-bytes-v1"),
        # v2: rows carry GAD's teacher_response column; a cached v1 file (written once, kept) lacks it
        "train": str(root / f"{task}-train-v2.parquet"),
        "val": str(root / f"{task}-train-v2.parquet"),
        "reward": str(root / "rlx_smoke_reward.py"),
        "checkpoints": str(root / "checkpoints"),
        "task": task,
    }

    def get(path, default=None):
        return resolved.get(path, default)

    plan = sizes.plan(
        get,
        assets=assets,
        steps=steps,
        seed=seed,
        task_response_length=t.max_response_length,
        has_critic=has_critic(get),
    )
    return plan, assets


def write_assets(assets: dict[str, str]) -> None:
    """Build the tiny model, the task data and the reward file where `cpu_plan` said (idempotent, atomic)."""
    from rlx.smoke.tasks import get_task
    from rlx.verl_cpu import assets as build

    root = Path(assets["model"]).parent
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        from rlx.errors import ConfigError

        raise ConfigError(
            f"cannot write the verl engine's tiny model and data: {e.strerror or e}",
            where=str(root),
            hint=f"point {CACHE_ENV} at a writable directory, e.g. `{CACHE_ENV}=/tmp/rlx-cache rlx train ...`",
        ) from None
    build.write_model(Path(assets["model"]))
    if not Path(assets["train"]).exists():
        get_task(assets["task"]).write_parquet(assets["train"])
    build.write_reward(root)


def job_env() -> dict[str, str]:
    """What the job's environment adds: the plugin in every verl process, and the CPU platform. The weight-sync
    negative control (`RLX_VERL_CPU_NO_SYNC`, set where rlx runs) travels with it: Ray's workers do not inherit the
    launching shell's environment."""
    from rlx.verl_cpu.rollout_env import NO_SYNC_ENV

    env = {
        "VERL_USE_EXTERNAL_MODULES": "rlx.verl_cpu.plugin",
        "RLX_VERL_CPU": "1",
        "VERL_PLATFORM": "cpu",
        # FSDP engines are registered for cuda/npu only (workers/engine/fsdp/transformer_impl.py:1143); the
        # engine registry reads this override (workers/engine/base.py:405)
        "VERL_ENGINE_DEVICE": "cuda",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HYDRA_FULL_ERROR": "1",
    }
    if os.environ.get(NO_SYNC_ENV):
        env[NO_SYNC_ENV] = os.environ[NO_SYNC_ENV]
    return env
