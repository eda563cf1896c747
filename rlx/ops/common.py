"""Small tensor helpers shared by the rlx algorithm ops: group indices, masked statistics, per-sample inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def group_index(index: Any, device: torch.device | str | None = None) -> tuple[torch.Tensor, int]:
    """Map arbitrary group labels (uids: strings, ints, a tensor) to group ids in 0..G-1.

    Args:
        index: one label per sample, e.g. verl's `uid` ndarray of strings.
        device: where the returned tensor lives.

    Returns:
        (ids LongTensor[bs], G). Strings and other labels get contiguous ids; an integer tensor of small non-negative
        ids is returned as is, so G may exceed the number of distinct labels (the extra groups are empty).
    """
    if isinstance(index, torch.Tensor) and not index.is_floating_point():
        flat = index.reshape(-1).to(device=device or index.device, dtype=torch.long)
        if flat.numel() and 0 <= int(flat.min()) and int(flat.max()) <= 4 * flat.numel():
            # already small non-negative ids (e.g. from a previous call): empty groups are harmless to every op here,
            # and torch.unique (a sort) would cost more than the maths
            return flat, int(flat.max()) + 1
        _, inv = torch.unique(flat, return_inverse=True)
    else:
        import pandas as pd  # hash-based factorisation: ~10x faster than np.unique's sort on string uids

        labels = index.detach().cpu().numpy() if isinstance(index, torch.Tensor) else index
        codes, _ = pd.factorize(np.asarray(labels, dtype=object).reshape(-1), use_na_sentinel=False)
        inv = torch.from_numpy(codes.astype(np.int64, copy=False)).to(device=device)
    n_groups = int(inv.max().item()) + 1 if inv.numel() else 0
    return inv, n_groups


def per_sample(value: Any, n: int, *, dtype: torch.dtype, device: torch.device | str | None, name: str) -> torch.Tensor:
    """Turn a per-sample input (tensor, ndarray, list, scalar) into a 1-D tensor of length `n`.

    Raises:
        ValueError: the input has the wrong number of entries (names the argument).
    """
    if isinstance(value, torch.Tensor):
        t = value.detach().reshape(-1)
    else:
        arr = np.asarray(value)
        if arr.dtype == object:  # e.g. None for "unknown": count it as 0 / False
            arr = np.array([0 if v is None else v for v in arr.reshape(-1)], dtype=np.float64)
        t = torch.as_tensor(arr).reshape(-1)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{name}: expected {n} per-sample values, got {t.numel()}")
    return t.to(device=device, dtype=dtype)


def group_sum(values: torch.Tensor, gidx: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Sum `values[bs]` within each group; returns [n_groups]."""
    return torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add_(0, gidx, values)


def group_logsumexp(x: torch.Tensor, gidx: torch.Tensor, n_groups: int) -> torch.Tensor:
    """log Σ_{j in g} exp(x_j) per group, numerically stable; -inf entries are ignored (empty group -> -inf)."""
    gmax = torch.full((n_groups,), -torch.inf, dtype=x.dtype, device=x.device)
    gmax = gmax.scatter_reduce(0, gidx, x, reduce="amax", include_self=True)
    safe_max = torch.where(torch.isfinite(gmax), gmax, torch.zeros_like(gmax))
    total = group_sum(torch.exp(x - safe_max[gidx]), gidx, n_groups)
    return torch.log(total) + safe_max


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` is set; 0 when the mask is empty. Values outside the mask (NaN, ±inf padding)
    are selected away with `torch.where`, not multiplied by 0 (NaN·0 is NaN)."""
    keep = mask.bool()
    return torch.where(keep, values, 0).sum() / keep.sum().clamp_min(1).to(values.dtype)


def seq_lengths(response_mask: torch.Tensor) -> torch.Tensor:
    """Number of valid response tokens per sample, as float [bs]."""
    return response_mask.to(torch.float32 if not response_mask.is_floating_point() else response_mask.dtype).sum(-1)


def seq_mean(values: torch.Tensor, response_mask: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean over valid tokens [bs]; 0 for empty responses (`lengths`: the mask's row sums, if known).

    NaN or ±inf at padded positions does not reach the mean: when the masked product is not finite, the sum is
    recomputed selecting padded positions away with `torch.where` (whose gradient there is exactly 0).
    """
    mask = response_mask.to(values.dtype)
    total = torch.einsum("bt,bt->b", values, mask)  # one pass, no [bs, T] temporary
    if not bool(torch.isfinite(total).all()):
        # NaN·0 = NaN: padding that is not finite (or a non-finite valid value) gets the selecting path, whose
        # gradient is also exactly 0 at padded positions
        total = torch.where(response_mask.bool(), values, 0).sum(-1)
    return total / (mask.sum(-1) if lengths is None else lengths.to(values.dtype)).clamp_min(1.0)
