"""ReMax runs on the trainer its preset selects (issue 11).

verl 0.9.1's v1 trainer never supplies `reward_baselines`: its `_compute_advantage` (trainer/ppo/v1/trainer_base.py:1743)
builds a DataProto from TransferQueue fields that do not include it, and `compute_advantage` (ray_trainer.py:258) passes
`reward_baselines` only when the batch has it. Only the legacy trainer generates the greedy baseline
(ray_trainer.py:1520-1535). These tests rebuild each trainer's advantage step with verl's own functions, so they fail
if the preset selects a trainer that cannot run ReMax, and they fail loudly when an upgraded verl changes either side.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlx import verl_keys as K
from rlx.resolve import resolve
from rlx.validate import validate


def _batch(with_baseline: bool):
    """Two prompts x n=2, outcome reward on the last valid token (what the reward loop writes as rm_scores)."""
    from verl import DataProto

    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float32)
    scores = torch.zeros(4, 4)
    for i, r in enumerate([1.0, 0.0, 1.0, 1.0]):
        scores[i, int(mask[i].sum()) - 1] = r
    batch = {"response_mask": mask, "token_level_rewards": scores, "token_level_scores": scores}
    if with_baseline:  # ray_trainer.py:1534: the greedy response's summed rm_scores, repeated per sample
        batch["reward_baselines"] = torch.tensor([1.0, 1.0, 0.0, 0.0])
    return DataProto.from_dict(tensors=batch, non_tensors={"uid": np.array(["a", "a", "b", "b"], dtype=object)})


def _advantage_step(resolved):
    """The advantage step of the trainer `trainer.use_v1` selects, with verl's own functions."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.ray_trainer import compute_advantage
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    algo = OmegaConf.create(resolved.container()["algorithm"])
    n = resolved.get(K.ROLLOUT_N)
    if resolved.get(K.USE_V1):
        data = _batch(with_baseline=False)  # the v1 trainer fetches no baseline field
        keys = [f"{u}_0_{i}" for i, u in enumerate(["a", "a", "b", "b"])]
        return compute_advantage_for_multi_trajectories(data, batch_keys=keys, adv_estimator=algo.adv_estimator,
                                                        num_repeat=n, config=algo)
    return compute_advantage(_batch(with_baseline=True), adv_estimator=algo.adv_estimator, num_repeat=n, config=algo)


def test_v1_trainer_cannot_run_remax_in_this_verl():
    """The workaround's premise: if this starts passing, verl's v1 trainer supplies the baseline and RLX446 can go."""
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    with pytest.raises(TypeError, match="reward_baselines"):
        compute_advantage_for_multi_trajectories(_batch(with_baseline=False), batch_keys=["a_0_0"] * 4,
                                                 adv_estimator="remax", config={})


def test_remax_preset_advantage_step_runs_on_its_trainer():
    out = _advantage_step(resolve("remax"))
    mask = out.batch["response_mask"]
    # ReMax (arXiv 2310.10505, eq. 8): A = R(response) - R(greedy), on every valid token.
    expected = (torch.tensor([1.0, 0.0, 1.0, 1.0]) - torch.tensor([1.0, 1.0, 0.0, 0.0]))[:, None] * mask
    torch.testing.assert_close(out.batch["advantages"], expected)


def test_remax_preset_validates_clean():
    report = validate(resolve("remax"))
    assert [f.code for f in report.problems] == []


def test_remax_on_the_v1_trainer_is_refused_with_a_hint_that_works():
    report = validate(resolve("grpo", overrides=["algorithm.adv_estimator=remax"]))
    found = [f for f in report.errors if f.code == "RLX446"]
    assert found and found[0].path == K.USE_V1
    assert "trainer.use_v1=false" in found[0].hint
    fixed = validate(resolve("grpo", overrides=["algorithm.adv_estimator=remax", "trainer.use_v1=false"]))
    assert "RLX446" not in {f.code for f in fixed.problems}
    assert "RLX109" not in {f.code for f in fixed.problems}  # its hint (use_v1=true) would lead back into RLX446
