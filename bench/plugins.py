"""Benchmark rlx's verl plugin functions against verl's own, on the same CPU tensors in one process.

    .venv/bin/python bench/plugins.py [--reps 7] [--batch 256] [--tokens 2048] [--responses 65536] [--resp-tokens 64]

Each function is fetched back out of verl's registries (so this also checks the plugin loaded). Baseline and candidate
run alternately (one warm-up each, then `--reps` pairs), so load from other processes hits both alike. Reported: the
median wall time of each and the median of the per-pair ratios candidate / baseline, all in the same process:

- losses (`rlx_aepo`, `rlx_gepo`) vs verl's `vanilla`, forward + backward at batch x tokens (256 x 2048). Target <= 1.2x (issue 15).
- estimators (`rlx_aspo`, `rlx_vapo`) vs verl's `grpo_vectorized` at `--responses` (65,536) responses. Target <= 2x.
  `rlx_aspo` with base `grpo` runs verl's own `grpo` (a Python loop over rows, as verl's trainer runs it for `grpo`),
  so it is shown against that, its base; with base `grpo_vectorized` against `grpo_vectorized`.
  `rlx_vapo` is a GAE (a reverse scan over tokens, like verl's `gae`), so it is also shown against verl's `gae`.
  GEPO's per-uid denominator (computed once per batch by the rlx trainer) is shown there too.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(baseline: Callable[[], object], candidate: Callable[[], object], reps: int) -> tuple[float, float, float]:
    """(median baseline s, median candidate s, median of per-pair ratios), baseline and candidate alternating."""
    baseline(), candidate()  # warm-up (allocator, lazy init)
    pairs = [(_time(baseline), _time(candidate)) for _ in range(reps)]
    return (statistics.median(b for b, _ in pairs), statistics.median(c for _, c in pairs),
            statistics.median(c / b for b, c in pairs))


def _mask(n: int, width: int, gen: torch.Generator) -> torch.Tensor:
    lengths = torch.randint(width // 4, width + 1, (n,), generator=gen)
    return (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).float()


def bench_losses(batch: int, tokens: int, reps: int) -> list[tuple[str, float, float, float]]:
    from verl.trainer.ppo import core_algos
    from verl.workers.config import FSDPActorConfig

    from rlx.ops.gepo import group_log_denominator

    gen = torch.Generator().manual_seed(0)
    mask = _mask(batch, tokens, gen)
    old = -torch.rand(batch, tokens, generator=gen) * 3
    new_base = old + 0.1 * torch.randn(batch, tokens, generator=gen)
    scores = (torch.rand(batch, generator=gen) > 0.5).float()
    adv = ((scores - scores.mean()) / scores.std()).unsqueeze(-1) * mask
    entropy = torch.rand(batch, tokens, generator=gen) * 2
    uid = np.repeat(np.arange(batch // 8), 8).astype(str)
    log_denom = group_log_denominator(old, mask, uid)
    cfg = FSDPActorConfig(strategy="fsdp", rollout_n=8, ppo_mini_batch_size=2, ppo_micro_batch_size_per_gpu=2,
                          clip_ratio_low=0.2, clip_ratio_high=0.28)

    def run(name: str, **extra: object) -> Callable[[], object]:
        fn = core_algos.get_policy_loss_fn(name)

        def step() -> object:
            lp = new_base.clone().requires_grad_(True)
            loss, _ = fn(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask,
                         loss_agg_mode="token-mean", config=cfg, rollout_is_weights=None, **extra)
            loss.backward()
            return loss

        return step

    rows = []
    for name, extra in (("rlx_aepo", {"entropy": entropy}), ("rlx_gepo", {"log_denom": log_denom})):
        t_base, t, ratio = compare(run("vanilla"), run(name, **extra), reps)
        rows.append((f"{name} vs vanilla", t_base, t, ratio))
    return rows


def bench_estimators(responses: int, tokens: int, reps: int) -> list[tuple[str, float, float, float]]:
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo import core_algos

    from rlx.ops.gepo import group_log_denominator

    gen = torch.Generator().manual_seed(1)
    group = 16
    mask = _mask(responses, tokens, gen)
    lengths = mask.sum(-1).long()
    scores = (torch.rand(responses, generator=gen) > 0.5).float()
    rewards = torch.zeros(responses, tokens)
    rewards[torch.arange(responses), lengths - 1] = scores
    values = torch.rand(responses, tokens, generator=gen) * mask
    old = -torch.rand(responses, tokens, generator=gen) * 3
    uid = np.array([f"uid-{i // group:06d}" for i in range(responses)], dtype=object)
    used = torch.rand(responses, generator=gen) > 0.3
    first = torch.where(used, (torch.rand(responses, generator=gen) * lengths).long(), torch.full_like(lengths, -1))
    cfg = AlgoConfig()

    def est(name: str, **extra: object) -> Callable[[], object]:
        fn = core_algos.get_adv_estimator_fn(name)
        return lambda: fn(token_level_rewards=rewards, response_mask=mask, config=cfg, index=uid, **extra)

    grpo = est("grpo_vectorized")
    from omegaconf import OmegaConf

    vectorized = OmegaConf.create({"rlx": {"aspo": {"base": "grpo_vectorized"}}})  # verl's algorithm section
    rows = [("rlx_aspo (base grpo) vs verl grpo", *compare(
                est("grpo"), est("rlx_aspo", first_code_pos=first, used_code=used), reps)),
            ("rlx_aspo (base grpo_vectorized) vs grpo_vectorized", *compare(
                grpo, lambda: core_algos.get_adv_estimator_fn("rlx_aspo")(
                    token_level_rewards=rewards, response_mask=mask, config=vectorized, index=uid,
                    first_code_pos=first, used_code=used), reps)),
            ("rlx_vapo vs grpo_vectorized", *compare(grpo, est("rlx_vapo", values=values), reps)),
            ("gepo denominator vs grpo_vectorized", *compare(grpo, lambda: group_log_denominator(old, mask, uid), reps)),
            ("rlx_vapo vs verl gae", *compare(
                lambda: core_algos.compute_gae_advantage_return(rewards, values, mask, 1.0, 1.0),
                est("rlx_vapo", values=values), reps))]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--responses", type=int, default=65536)
    parser.add_argument("--resp-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import rlx.verl_plugin

    rlx.verl_plugin.ensure_registered()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.reps} reps")
    print(f"\nlosses, forward+backward, {args.batch} x {args.tokens} tokens (target <= 1.2x vanilla)")
    print(f"  {'':<52} {'baseline':>11} {'rlx':>11}  ratio")
    for name, t_base, t, ratio in bench_losses(args.batch, args.tokens, args.reps):
        print(f"  {name:<52} {t_base * 1e3:8.1f} ms {t * 1e3:8.1f} ms  {ratio:5.2f}x")
    print(f"\nestimators, {args.responses} responses x {args.resp_tokens} tokens (target <= 2x grpo_vectorized)")
    print(f"  {'':<52} {'baseline':>11} {'rlx':>11}  ratio")
    for name, t_base, t, ratio in bench_estimators(args.responses, args.resp_tokens, args.reps):
        print(f"  {name:<52} {t_base * 1e3:8.1f} ms {t * 1e3:8.1f} ms  {ratio:5.2f}x")


if __name__ == "__main__":
    main()
