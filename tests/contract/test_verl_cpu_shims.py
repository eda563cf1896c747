"""Each workaround of `rlx.verl_cpu.plugin` against the verl it works around (verl-on-cpu.md section 10).

Two halves. The premise tests read verl 0.9.1's own source and registries and fail loudly when an upgraded verl no
longer needs a workaround (then delete it) or moves what it patches (then re-aim it). The activation test loads the
plugin the way a job does (`VERL_USE_EXTERNAL_MODULES`, in a fresh interpreter) and checks each workaround in place.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import pytest
import torch


def test_verl_has_no_cpu_platform():
    from verl.plugin.platform import PlatformRegistry

    assert "cpu" not in PlatformRegistry.registered_names()


def test_verl_builds_a_duplicate_gloo_backend_on_cpu():
    from verl.utils import distributed

    src = inspect.getsource(distributed.initialize_global_process_group_ray)
    assert 'f"cpu:gloo,{get_device_name()}:{get_nccl_backend()}"' in src


def test_fsdp_engines_are_registered_for_accelerators_only():
    import verl.workers.engine.fsdp.transformer_impl  # noqa: F401  (registers the engines)
    from verl.workers.engine.base import EngineRegistry

    devices = set(EngineRegistry._engines["language_model"]["fsdp2"])
    assert "cpu" not in devices and "cuda" in devices  # hence VERL_ENGINE_DEVICE=cuda
    assert 'os.getenv("VERL_ENGINE_DEVICE")' in inspect.getsource(EngineRegistry)


def test_critic_loader_hard_codes_flash_attention():
    from verl.utils import model

    assert 'attn_implementation="flash_attention_2"' in inspect.getsource(model.load_valuehead_model)


def test_forward_only_models_pin_memory():
    from verl.workers.engine.fsdp import transformer_impl

    assert "CPUOffloadPolicy(pin_memory=True)" in inspect.getsource(transformer_impl)
    if not torch.cuda.is_available():
        try:
            torch.zeros(2).pin_memory()
        except RuntimeError:
            pass  # what the plugin answers
        else:
            raise AssertionError("pin_memory works without an accelerator now: the shim can go")


def test_replay_buffer_polls_every_two_seconds():
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    assert inspect.signature(ReplayBuffer.__init__).parameters["poll_interval"].default == 2.0


def test_rollout_registries_know_no_cpu_rollout_and_accept_one():
    from verl.workers.rollout import base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    assert {name for name, _ in base._ROLLOUT_REGISTRY} == {"vllm", "sglang", "trtllm"}
    assert hasattr(RolloutReplicaRegistry, "register")


def test_torch_cpu_lacks_the_cuda_memory_api():
    missing = [n for n in ("empty_cache", "max_memory_allocated", "get_device_name") if not hasattr(torch.cpu, n)]
    assert missing, "torch.cpu grew the CUDA memory API: the stubs can go"


PROBE = r"""
import json, os, torch, torch.distributed as dist
import verl  # loads VERL_USE_EXTERNAL_MODULES
from verl.plugin.platform import get_platform
from verl.utils.device import get_device_id, get_device_name, get_torch_device
from verl.workers.rollout.base import get_rollout_class
from verl.workers.rollout.replica import get_rollout_replica_class
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
import verl.utils.model as vmodel
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ["PROBE_PORT"])
dist.init_process_group(backend="cpu:gloo,cpu:gloo", rank=0, world_size=1)
t = torch.ones(3)
dist.all_reduce(t)
out = {
    "device": get_device_name(), "device_id": get_device_id(), "torch_device": get_torch_device() is torch.cpu,
    "backend": dist.get_backend(), "rollout": get_rollout_class("rlx_cpu").__name__,
    "replica": get_rollout_replica_class("rlx_cpu").__name__, "empty_cache": get_torch_device().empty_cache() is None,
    "pinned": torch.zeros(2).pin_memory().device.type, "critic": getattr(vmodel.load_valuehead_model, "_rlx_cpu", False),
    "poll": getattr(ReplayBuffer.__init__, "_rlx_cpu", False), "to": str(torch.zeros(1).to(get_device_id()).device),
}
dist.destroy_process_group()
print("RESULT" + json.dumps(out))
"""


def _probe(env_extra):
    from _rlxtest import free_port

    env = {
        **os.environ,
        "VERL_USE_EXTERNAL_MODULES": "rlx.verl_cpu.plugin",
        "PROBE_PORT": str(free_port()),
        **env_extra,
    }
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=180)
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT")]
    return p, (json.loads(line[-1][6:]) if line else None)


@pytest.mark.slow
def test_plugin_installs_every_workaround_when_asked():
    """Slow: the probe is a fresh interpreter that imports verl with the CPU plugin (about 9 s)."""
    p, out = _probe({"RLX_VERL_CPU": "1", "VERL_PLATFORM": "cpu"})
    assert out is not None, p.stderr[-3000:]
    assert out == {
        "device": "cpu",
        "device_id": "cpu",
        "torch_device": True,
        "backend": "cpu:gloo",
        "rollout": "CpuServerAdapter",
        "replica": "CpuReplica",
        "empty_cache": True,
        "pinned": "cpu",
        "critic": True,
        "poll": True,
        "to": "cpu",
    }, out


@pytest.mark.slow
def test_plugin_is_inert_unless_asked():
    """Slow: the probe is a fresh interpreter that imports verl without the CPU plugin (about 9 s)."""
    p, out = _probe({"RLX_VERL_CPU": "0", "VERL_PLATFORM": ""})
    # without the flag, nothing is patched: the duplicate backend fails as in plain verl
    assert out is None
    assert "Duplicate device type cpu" in p.stderr or "duplicate" in p.stderr.lower(), p.stderr[-2000:]
