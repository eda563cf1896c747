"""verl 0.9.1 on CPU, as a verl plugin: a CPU platform, a CPU rollout and the shims verl needs on a machine without a
GPU (../shared/docs/verl-on-cpu.md section 10, items 1-12).

verl imports this module in every process it starts (driver, TaskRunner, workers, rollout servers, agent loop and
reward workers) because the job's environment lists it in `VERL_USE_EXTERNAL_MODULES` (read by `verl/__init__.py`).
It activates only when `RLX_VERL_CPU=1` is set too and no CUDA device is visible: rlx's `--engine verl` sets both;
on a GPU node the module is inert. Each shim names the verl file and line it works around;
`tests/contract/test_verl_cpu_shims.py` fails when an upgraded verl no longer needs one or breaks it.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("rlx.verl_cpu")

ENV_FLAG = "RLX_VERL_CPU"
ROLLOUT_NAME = "rlx_cpu"
REPLAY_POLL_S = 0.2  # verl's ReplayBuffer polls every 2.0 s (trainer/ppo/v1/replay_buffer.py:144), 2 s per step
_active = False


def wanted() -> bool:
    """The job asked for verl on CPU, and this process sees no GPU."""
    if os.environ.get(ENV_FLAG, "") in ("", "0"):
        return False
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return False


def activate() -> bool:
    """Install the platform, the rollout and the shims (idempotent). Returns whether they are active."""
    global _active
    if _active:
        return True
    if not wanted():
        return False
    _register_platform()
    _stub_torch_cpu()
    _patch_process_group()
    _patch_pin_memory()
    _patch_critic_attention()
    _patch_replay_poll()
    _register_rollout()
    _active = True
    return True


# ---- 1. platform ---------------------------------------------------------------------------------------------------


def _register_platform() -> None:
    """verl has no CPU `PlatformBase` (plugin/platform/platform_manager.py falls back to nvidia). Ours is selected with
    VERL_PLATFORM=cpu. Its device module is `torch.cpu` itself: utils/flops_counter.py:77 and
    utils/profiler/performance.py:45 compare `get_torch_device()` with `torch.cpu`. Its Ray resource is "GPU", so
    verl's resource pools place workers on the (fake) GPUs the embedded head declares."""
    from contextlib import nullcontext

    import torch
    from verl.plugin.platform import PlatformBase, PlatformRegistry

    @PlatformRegistry.register(platform="cpu")
    class PlatformCPU(PlatformBase):
        device_name = "cpu"  # type: ignore[assignment]
        vendor_name = "cpu"  # type: ignore[assignment]
        device_module = torch.cpu  # type: ignore[assignment]

        def is_available(self) -> bool:
            return True

        def is_platform_available(self, use_smi_check: bool = False) -> bool:
            return os.environ.get("VERL_PLATFORM", "") == "cpu"

        def current_device(self) -> str:  # type: ignore[override]
            # verl uses the index as a device (`.to(get_device_id())`, utils/fsdp_utils.py:507), where an int means
            # an accelerator: "cpu" is the device every such call needs here.
            return "cpu"

        def device_count(self) -> int:
            return 1

        def set_device(self, device_index: int) -> None:
            return None

        def synchronize(self, device_index: int | None = None) -> None:
            return None

        def manual_seed(self, seed: int) -> None:
            torch.manual_seed(seed)

        def manual_seed_all(self, seed: int) -> None:
            torch.manual_seed(seed)

        def set_allocator_settings(self, settings: str) -> None:
            return None

        def empty_cache(self) -> None:
            return None

        def get_device_capability(self, device_index: int = 0):
            return None, None

        def communication_backend_name(self) -> str:
            return "gloo"

        def visible_devices_envvar(self) -> str:
            return "CUDA_VISIBLE_DEVICES"

        def nvtx_range(self, msg: str):
            return nullcontext()

        def profiler_start(self) -> None:
            return None

        def profiler_stop(self) -> None:
            return None

        def ray_resource_name(self) -> str:
            return "GPU"

        def ray_noset_envvars(self) -> list[str]:
            return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

        def is_ipc_supported(self) -> bool:
            return False

        def cudart(self):
            return None


# ---- 6. CUDA-only APIs called through get_torch_device() ------------------------------------------------------------


def _stub_torch_cpu() -> None:
    """verl calls `get_torch_device().empty_cache()`, `.max_memory_allocated()`, `.get_device_name()` and friends
    (workers/engine_workers.py:688, utils/memory_utils.py, utils/flops_counter.py:85), which torch.cpu lacks."""
    import torch

    stubs = {
        "empty_cache": lambda *a, **k: None,
        "memory_allocated": lambda *a, **k: 0,
        "memory_reserved": lambda *a, **k: 0,
        "max_memory_allocated": lambda *a, **k: 0,
        "max_memory_reserved": lambda *a, **k: 0,
        "reset_peak_memory_stats": lambda *a, **k: None,
        "mem_get_info": lambda *a, **k: (0, 0),
        "get_device_name": lambda *a, **k: "CPU",
        "manual_seed": lambda seed: torch.manual_seed(seed),
        "manual_seed_all": lambda seed: torch.manual_seed(seed),
        "set_device": lambda *a, **k: None,
        "is_available": lambda: True,
    }
    for name, fn in stubs.items():
        if not hasattr(torch.cpu, name):
            setattr(torch.cpu, name, fn)


# ---- 3. duplicate gloo backend ---------------------------------------------------------------------------------------


def _patch_process_group() -> None:
    """utils/distributed.py:63,89 build `f"cpu:gloo,{device}:{backend}"`, which is `cpu:gloo,cpu:gloo` on CPU:
    torch refuses a duplicate device type. Keep the first entry per device."""
    import torch.distributed as dist

    original = dist.init_process_group
    if getattr(original, "_rlx_cpu", False):
        return

    def init_process_group(*args, **kwargs):
        backend = kwargs.get("backend")
        if isinstance(backend, str) and "," in backend:
            seen, parts = set(), []
            for part in backend.split(","):
                device = part.split(":", 1)[0]
                if device not in seen:
                    seen.add(device)
                    parts.append(part)
            kwargs["backend"] = ",".join(parts)
        return original(*args, **kwargs)

    init_process_group._rlx_cpu = True  # type: ignore[attr-defined]
    dist.init_process_group = init_process_group


# ---- 10. pinned memory without an accelerator ------------------------------------------------------------------------


def _patch_pin_memory() -> None:
    """Forward-only models (the ref) get FSDP2 `CPUOffloadPolicy(pin_memory=True)`
    (workers/engine/fsdp/transformer_impl.py:459-462); pinning needs an accelerator. Pinned memory only speeds up
    host-to-device copies, so on CPU the tensor itself is the answer."""
    import torch

    original = torch.Tensor.pin_memory
    if getattr(original, "_rlx_cpu", False):
        return

    def pin_memory(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        except RuntimeError:
            return self

    pin_memory._rlx_cpu = True  # type: ignore[attr-defined]
    torch.Tensor.pin_memory = pin_memory  # type: ignore[method-assign]


# ---- 5. FlashAttention2 hard-coded for the critic -------------------------------------------------------------------


def _patch_critic_attention() -> None:
    """The actor takes `model.override_config.attn_implementation=sdpa`, but the critic's loader hard-codes
    flash_attention_2 (utils/model.py:649), which does not exist on CPU."""
    import verl.utils.model as vmodel

    original = vmodel.load_valuehead_model
    if getattr(original, "_rlx_cpu", False):
        return

    def load_valuehead_model(local_path, torch_dtype, model_config, trust_remote_code):
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification.from_pretrained(
            pretrained_model_name_or_path=local_path,
            torch_dtype=torch_dtype,
            config=model_config,
            attn_implementation="sdpa",
            trust_remote_code=trust_remote_code,
        )

    load_valuehead_model._rlx_cpu = True  # type: ignore[attr-defined]
    vmodel.load_valuehead_model = load_valuehead_model


# ---- 11. ReplayBuffer polling ----------------------------------------------------------------------------------------


def _patch_replay_poll() -> None:
    """The v1 ReplayBuffer sleeps `poll_interval` (2.0 s, not configurable: trainer/ppo/v1/replay_buffer.py:144,409)
    between polls, which doubles a CPU step."""
    from verl.trainer.ppo.v1 import replay_buffer

    cls = replay_buffer.ReplayBuffer
    original = cls.__init__
    if getattr(original, "_rlx_cpu", False):
        return

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.poll_interval = min(float(getattr(self, "poll_interval", REPLAY_POLL_S)), REPLAY_POLL_S)

    __init__._rlx_cpu = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[method-assign]  # monkeypatch verl's ReplayBuffer constructor


# ---- 7. the CPU rollout ------------------------------------------------------------------------------------------------


def _register_rollout() -> None:
    """verl knows vllm/sglang/trtllm only (workers/rollout/base.py:89, workers/rollout/replica.py:312); both
    registries take new entries."""
    from verl.workers.rollout import base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = "rlx.verl_cpu.rollout.CpuServerAdapter"

    def _load():
        from rlx.verl_cpu.rollout import CpuReplica

        return CpuReplica

    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load)


activate()
