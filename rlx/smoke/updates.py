"""The step's updates, in verl's order: GAD's discriminator or the critic, then the actor (`rlx.smoke.phases.update`).

Each takes the run's `Setup` and the step's `Batch`, updates the models in place and returns its metrics (verl's names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlx.smoke.tensors import accumulate, d_scores, logprob_entropy, mean_metrics

if TYPE_CHECKING:
    from rlx.smoke.phases import Batch
    from rlx.smoke.setup import Setup


def mini_batches(sel, sz, step: int, epoch: int, seed: int, shuffle: bool):
    """Index chunks for the updates: `mini_batches` chunks of whole groups (filtered samples dropped)."""
    import torch

    idx = sel
    if shuffle:
        g = torch.Generator().manual_seed(seed * 100003 + step * 101 + epoch)
        idx = idx[torch.randperm(len(idx), generator=g)]
    n_chunks = max(1, min(sz.mini_batches, len(idx)))
    return [c for c in torch.tensor_split(idx, n_chunks) if len(c)]


def update_actor(s: Setup, b: Batch) -> dict[str, float]:
    """`ppo_epochs` x mini-batches x micro-batches of policy-loss updates, as verl's actor worker runs them."""
    import torch

    core_algos, loss_fn, loss_params, actor_cfg = s.core_algos, s.loss_fn, s.loss_params, s.actor_cfg
    policy, optimizer, sz, temperature, nll_coef = s.policy, s.optimizer, s.sz, s.temperature, s.nll_coef
    P = s.prompt_len  # noqa: N806
    seqs, mask, old_lp, ref_lp, advantages, log_denom = b.seqs, b.mask, b.old_lp, b.ref_lp, b.advantages, b.log_denom
    correct, sel, step, seed = b.correct, b.sel, b.step, s.seed

    from_loss: dict[str, list[float]] = {}
    grad_norms: list[float] = []
    skipped = 0
    correct_t = torch.tensor(correct, dtype=torch.float32)
    want_entropy = (
        bool(actor_cfg.calculate_entropy) or float(actor_cfg.entropy_coeff) != 0.0 or "entropy" in loss_params
    )
    policy.train()
    for epoch in range(int(actor_cfg.ppo_epochs)):
        for mb in mini_batches(sel, sz, step, epoch, seed, bool(actor_cfg.shuffle)):
            if bool((advantages[mb] * mask[mb]).abs().sum() == 0):
                skipped += 1  # calibrated shortcut: no policy-gradient signal in this mini-batch
                continue
            optimizer.zero_grad(set_to_none=True)
            batch_num_tokens = int(mask[mb].sum())
            nll_tokens = float((mask[mb] * correct_t[mb].unsqueeze(-1)).sum())
            for micro in torch.tensor_split(mb, min(sz.micro_per_mini, len(mb))):
                # workers/utils/losses.py::ppo_loss sets these before each micro-batch (dp_size 1 on one CPU)
                actor_cfg.global_batch_info.update(
                    dp_size=1,
                    batch_num_tokens=batch_num_tokens,
                    global_batch_size=len(mb),
                    loss_scale_factor=actor_cfg.loss_scale_factor,
                )
                m = mask[micro]
                logp, ent = logprob_entropy(policy, seqs[micro], P, temperature, want_entropy=want_entropy)
                kwargs: dict[str, Any] = dict(
                    old_log_prob=old_lp[micro],
                    log_prob=logp,
                    advantages=advantages[micro],
                    response_mask=m.bool(),
                    loss_agg_mode=actor_cfg.loss_agg_mode,
                    config=actor_cfg,
                    rollout_is_weights=None,
                )
                if "entropy" in loss_params:
                    kwargs["entropy"] = ent.detach()
                if "log_denom" in loss_params:
                    kwargs["log_denom"] = log_denom[micro]
                pg_loss, pg_metrics = loss_fn(**kwargs)
                loss = pg_loss
                accumulate(from_loss, "actor/pg_loss", pg_loss)
                for k, v in (pg_metrics or {}).items():
                    accumulate(from_loss, k if "/" in k else f"actor/{k}", v)
                if ent is not None:
                    entropy_loss = core_algos.agg_loss(
                        loss_mat=ent,
                        loss_mask=m.bool(),
                        loss_agg_mode=actor_cfg.loss_agg_mode,
                        **actor_cfg.global_batch_info,
                    )
                    loss = loss - float(actor_cfg.entropy_coeff) * entropy_loss
                    accumulate(from_loss, "actor/entropy_loss", entropy_loss)
                if actor_cfg.use_kl_loss:
                    kld = core_algos.kl_penalty(
                        logprob=logp, ref_logprob=ref_lp[micro], kl_penalty=actor_cfg.kl_loss_type
                    )
                    kl_loss = core_algos.agg_loss(
                        loss_mat=kld,
                        loss_mask=m.bool(),
                        loss_agg_mode=actor_cfg.loss_agg_mode,
                        **actor_cfg.global_batch_info,
                    )
                    loss = loss + kl_loss * float(actor_cfg.kl_loss_coef)
                    accumulate(from_loss, "actor/kl_loss", kl_loss)
                    accumulate(from_loss, "actor/kl_coef", actor_cfg.kl_loss_coef)
                if nll_coef:
                    from rlx.ops.vapo import positive_nll

                    nll, nll_metrics = positive_nll(logp, m, correct_t[micro], num_tokens=nll_tokens)
                    loss = loss + nll_coef * nll
                    for k, v in nll_metrics.items():
                        accumulate(from_loss, k, v)
                loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), float(actor_cfg.grad_clip or 1e9))
            if not torch.isfinite(grad_norm):
                optimizer.zero_grad(set_to_none=True)  # verl skips the step on a non-finite grad norm
            else:
                optimizer.step()
            grad_norms.append(float(grad_norm))
    out = mean_metrics(from_loss)
    if grad_norms:
        out["actor/grad_norm"] = sum(grad_norms) / len(grad_norms)
    out["actor/skipped_mini_batches"] = float(skipped)
    return out


def update_discriminator(s: Setup, b: Batch) -> dict[str, float]:
    """GAD's D step: Bradley-Terry loss on (teacher, student) pairs of the same prompt, one update per mini-batch.

    Metrics are those of the forward passes before each update (verl logs the critic's pre-update losses too)."""
    import torch

    from rlx.ops.gad import gad_disc_loss

    disc, opt, sz, P = s.disc, s.disc_opt, s.sz, s.prompt_len  # noqa: N806
    seqs, mask, teacher_seqs, teacher_mask = b.seqs, b.mask, b.teacher_seqs, b.teacher_mask
    sel, step, seed = b.sel, b.step, s.seed
    grad_clip = float(s.get("critic.grad_clip", 1.0) or 1.0)

    acc: dict[str, list[float]] = {}
    disc.train()
    g = torch.Generator().manual_seed(seed * 100_003 + step)
    perm = sel[torch.randperm(len(sel), generator=g)]
    for mb in perm.chunk(max(1, sz.mini_batches)):
        if not len(mb):
            continue
        opt.zero_grad()
        r = gad_disc_loss(d_scores(disc, teacher_seqs[mb], teacher_mask[mb], P), d_scores(disc, seqs[mb], mask[mb], P))
        r.loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(disc.parameters(), grad_clip)
        opt.step()
        accumulate(acc, "critic/d_loss", r.loss)
        accumulate(acc, "critic/d_acc", r.d_acc)
        accumulate(acc, "critic/d_teacher_score_mean", r.teacher_score_mean)
        accumulate(acc, "critic/d_student_score_mean", r.student_score_mean)
        accumulate(acc, "critic/grad_norm", gn)
    return mean_metrics(acc)


def update_critic(s: Setup, b: Batch) -> dict[str, float]:
    """Value-model updates with verl's `compute_value_loss` (clipped value loss)."""
    import torch

    core_algos, critic, opt, ccfg, sz = s.core_algos, s.critic, s.critic_opt, s.critic_cfg, s.sz
    P = s.prompt_len  # noqa: N806
    seqs, mask, values, returns, sel = b.seqs, b.mask, b.values, b.returns, b.sel
    assert ccfg is not None  # built whenever the critic is
    acc: dict[str, list[float]] = {}
    critic.train()
    for epoch in range(ccfg["ppo_epochs"]):
        for mb in mini_batches(sel, sz, 0, epoch, 0, False):
            opt.zero_grad(set_to_none=True)
            batch_num_tokens = int(mask[mb].sum())
            for micro in torch.tensor_split(mb, min(sz.micro_per_mini, len(mb))):
                vpreds = critic(seqs[micro])[:, P - 1 : -1]
                vf_loss, vf_clipfrac = core_algos.compute_value_loss(
                    vpreds=vpreds,
                    returns=returns[micro],
                    values=values[micro],
                    response_mask=mask[micro].bool(),
                    cliprange_value=ccfg["cliprange_value"],
                    loss_agg_mode=ccfg["loss_agg_mode"],
                    dp_size=1,
                    batch_num_tokens=batch_num_tokens,
                    global_batch_size=len(mb),
                )
                vf_loss.backward()
                accumulate(acc, "critic/vf_loss", vf_loss)
                accumulate(acc, "critic/vf_clipfrac", vf_clipfrac)
                accumulate(acc, "critic/vpred_mean", (vpreds * mask[micro]).sum() / mask[micro].sum().clamp_min(1))
            gn = torch.nn.utils.clip_grad_norm_(critic.parameters(), ccfg["grad_clip"])
            if torch.isfinite(gn):
                opt.step()
            accumulate(acc, "critic/grad_norm", gn)
    return mean_metrics(acc)
