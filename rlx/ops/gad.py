"""GAD's discriminator loss and student reward (Generative Adversarial Distillation,
arXiv 2511.10643).

The discriminator D is a scalar head read at the last response token. With teacher scores d_t = D(x, y_teacher)
and student scores d_s = D(x, y_student) paired per prompt (N pairs),

    L_D   = -1/N sum_i log sigmoid(d_t,i - d_s,i) = 1/N sum_i softplus(-(d_t,i - d_s,i))   (Bradley-Terry)
    d_acc = 1/N sum_i [d_t,i > d_s,i]          (ties count as wrong: a D that cannot separate scores 0 there)
    r_i   = sg(d_s,i), written at the last response token (where verl expects token-level scores, like rm_scores)

softplus keeps L_D finite for any |d_t - d_s| (log sigmoid(-100) underflows to -inf in float32 when written naively).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class GadDiscLoss(NamedTuple):
    """The BT loss and the statistics logged beside it (critic/d_*)."""

    loss: torch.Tensor  # scalar L_D (differentiable wrt both scores)
    d_acc: torch.Tensor  # scalar in [0, 1], no gradient
    teacher_score_mean: torch.Tensor  # scalar, no gradient
    student_score_mean: torch.Tensor  # scalar, no gradient


def gad_disc_loss(teacher_scores: torch.Tensor, student_scores: torch.Tensor) -> GadDiscLoss:
    """Bradley-Terry discriminator loss over paired teacher / student scores (see the module docstring).

    Args:
        teacher_scores: D(x, y_teacher) per pair [N].
        student_scores: D(x, y_student) per pair [N] (same prompt order as `teacher_scores`).

    Raises:
        ValueError: the two score vectors differ in shape or are empty.
    """
    dt = teacher_scores.reshape(-1)
    ds = student_scores.reshape(-1)
    if dt.shape != ds.shape:
        raise ValueError(f"teacher_scores {tuple(dt.shape)} and student_scores {tuple(ds.shape)} must pair up")
    if dt.numel() == 0:
        raise ValueError("gad_disc_loss needs at least one teacher/student pair")
    diff = dt - ds
    loss = F.softplus(-diff).mean()
    with torch.no_grad():
        d_acc = (diff > 0).to(dt.dtype).mean()
        t_mean, s_mean = dt.detach().mean(), ds.detach().mean()
    return GadDiscLoss(loss, d_acc, t_mean, s_mean)


def last_token_index(response_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last valid response token per row [bs] (-1 for an empty response)."""
    mask = response_mask.to(torch.long)
    T = mask.shape[-1]
    pos = torch.arange(T, device=mask.device).expand_as(mask)
    return torch.where(mask > 0, pos, torch.full_like(pos, -1)).max(dim=-1).values


def gad_token_rewards(student_scores: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Student reward r_i = sg(D(x, y_i)) placed at the last response token, 0 elsewhere [bs, T].

    Rows with an empty response get no reward (all zeros). The result is detached: the policy never backpropagates
    into the discriminator.
    """
    scores = student_scores.detach().reshape(-1)
    bs = response_mask.shape[0]
    if scores.numel() != bs:
        raise ValueError(f"student_scores: expected {bs} per-sample values, got {scores.numel()}")
    out = torch.zeros(response_mask.shape, dtype=scores.dtype, device=scores.device)
    last = last_token_index(response_mask).to(scores.device)
    rows = torch.nonzero(last >= 0).reshape(-1)
    out[rows, last[rows]] = scores[rows]
    return out
