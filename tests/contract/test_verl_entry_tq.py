"""`RlxTrainerMixin._compute_advantage` against a real TransferQueue on the shared private Ray head (CPU).

The override runs exactly as in verl's TaskRunner: rows are put into the TransferQueue the way verl's agent loop puts
them (keys `{uid}_{session}_{index}`, `extra_fields.reward_extra_info`), the override fetches, calls verl's own
`_compute_advantage` inside `estimator_extras`, and writes rlx's per-sample fields back; the test reads what the actor
workers would fetch. It runs in a child process (its own Ray driver and TransferQueue, torn down by `tq.close()`)
because TransferQueue keeps process-global state. About 20-60 s (Ray driver start, TransferQueue actors), hence
`integration`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LENGTHS = [3, 5, 2, 4]


def probe(gcs_address: str) -> dict:
    """Child-process body: returns what the actor would see for the aspo, gepo and vapo presets."""
    import ray
    import torch
    import transfer_queue as tq
    from omegaconf import OmegaConf
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    from rlx import verl_entry as E
    from rlx.resolve import resolve

    ray.init(address=gcs_address, log_to_driver=False)
    tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
    results = {}
    try:
        gen = torch.Generator().manual_seed(0)
        extras = [{"first_code_pos": 10, "used_code": True, "response_chars": 100},
                  {"first_code_pos": 50, "used_code": True, "response_chars": 200},
                  {"first_code_pos": 90, "used_code": True, "response_chars": 300},
                  {"used_code": False, "response_chars": 50}]
        for algo, uids in (("aspo", ["p", "p", "p", "p"]), ("gepo", ["a", "b", "a", "b"]),
                           ("vapo", ["p", "p", "p", "p"])):
            rows, keys = [], []
            for i, length in enumerate(LENGTHS):
                rm = torch.zeros(length)
                rm[-1] = [1.0, 1.0, 1.0, 0.0][i]
                rows.append({"uid": uids[i], "response_mask": torch.ones(length, dtype=torch.int64),
                             "rm_scores": rm, "old_log_probs": -torch.rand(length, generator=gen),
                             "values": torch.rand(length, generator=gen),
                             "extra_fields": {"reward_extra_info": extras[i]}})
                keys.append(f"{uids[i]}{algo}_{i}_0")
            meta = tq.kv_batch_put(keys=keys, partition_id=algo, fields=list_of_dict_to_tensordict(rows))
            config = resolve(algo).config
            cfg = OmegaConf.create({"trainer": {"v1": {"trainer_mode": "sync"}}})
            E.install_trainer(cfg)
            from verl.trainer.ppo.v1.trainer_base import get_trainer_cls

            trainer = object.__new__(get_trainer_cls(cfg.trainer.v1.trainer_mode))
            trainer.config = config
            metrics: dict = {}
            returned = trainer._compute_advantage(meta, metrics)
            got = tq.kv_batch_get(keys=keys, partition_id=algo)
            out = {"fields": sorted(got.keys()), "metrics": {k: float(v) for k, v in metrics.items()},
                   "meta_fields": sorted(returned.fields or []),
                   "adv_first": [float(a[0]) for a in got["advantages"].unbind()],
                   "returns": [a.tolist() for a in got["returns"].unbind()]}
            for key in (E.LOG_DENOM_FIELD, E.CORRECT_FIELD, E.NLL_TOKENS_FIELD):
                if key in got.keys():
                    out[key] = got[key].tolist()
            results[algo] = out
        # the TaskRunner subclass ships to a Ray worker (cloudpickled, rlx importable there) and starts
        runner = E.task_runner_class().remote()
        results["task_runner_ready"] = bool(ray.get(runner.__ray_ready__.remote(), timeout=120))
        ray.kill(runner)
    finally:
        tq.close()
        ray.shutdown()
    return results


@pytest.mark.integration
def test_compute_advantage_override_with_a_real_transfer_queue(ray_head, tmp_path):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    env.pop("RLX_ALGO_CFG", None)
    out_file = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, str(Path(__file__)), ray_head.gcs_address, str(out_file)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    res = json.loads(out_file.read_text())

    assert res["task_runner_ready"] is True
    aspo = res["aspo"]
    assert aspo["adv_first"] == pytest.approx([0.85, 0.5, 0.15, -1.5], abs=1e-5)  # docs vector 4 via the queue
    assert aspo["metrics"]["aspo/code_usage_ratio"] == pytest.approx(0.75)
    assert not any(f.startswith("rlx_") for f in aspo["fields"])  # ASPO writes nothing for the actor

    gepo = res["gepo"]
    assert "rlx_log_denom" in gepo["fields"]
    # the KVBatchMeta handed on to _update_actor lists the new field beside verl's: the actor workers fetch it
    assert {"rlx_log_denom", "old_log_probs", "advantages"} <= set(gepo["meta_fields"])
    d = gepo["rlx_log_denom"]
    assert d[0] == pytest.approx(d[2]) and d[1] == pytest.approx(d[3]) and d[0] != pytest.approx(d[1])

    vapo = res["vapo"]
    assert vapo["rlx_correct"] == [1.0, 1.0, 1.0, 0.0]
    # the 4 rows are one update mini-batch: its correct-sample tokens 3 + 5 + 2
    assert vapo["rlx_nll_num_tokens"] == pytest.approx([10.0] * 4)
    # lambda_critic = 1, gamma = 1: every value target of a correct response is its final reward 1
    assert all(v == pytest.approx(1.0) for row in vapo["returns"][:3] for v in row)
    assert "vapo/lambda_mean" in vapo["metrics"]


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(json.dumps(probe(sys.argv[1])))
