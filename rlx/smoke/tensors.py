"""The smoke engine's tensor primitives: sampling, log-probs and entropy, the discriminator's score, metric reductions.

Plain functions of models and tensors (no set-up, no config); torch and verl are imported inside them.
"""

from __future__ import annotations

from typing import Any


def response_logits(model, seqs, prompt_len: int, temperature: float):
    logits = model(input_ids=seqs).logits[:, prompt_len - 1 : -1, :]
    return logits / temperature


def logprob_entropy(model, seqs, prompt_len: int, temperature: float, want_entropy: bool = True):
    import torch
    from verl.utils.torch_functional import entropy_from_logits

    logits = response_logits(model, seqs, prompt_len, temperature).float()
    resp = seqs[:, prompt_len:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, resp.unsqueeze(-1)).squeeze(-1)
    ent = entropy_from_logits(logits) if want_entropy else None
    return logp, ent


def generate(
    model, prompts, max_new: int, eos: int, pad: int, *, temperature: float, top_p: float, top_k: int, greedy: bool, gen
):
    """Autoregressive sampling with temperature / top-k / top-p (verl's rollout semantics); EOS ends a response."""
    import torch

    seqs = prompts
    done = torch.zeros(prompts.shape[0], dtype=torch.bool)
    out = []
    for _ in range(max_new):
        logits = model(input_ids=seqs).logits[:, -1, :].float()
        if greedy:
            tok = logits.argmax(-1)
        else:
            logits = logits / temperature
            if top_k and top_k > 0:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, -torch.inf)
            if top_p < 1.0:
                sorted_logits, order = torch.sort(logits, descending=True)
                cum = torch.softmax(sorted_logits, -1).cumsum(-1)
                drop = cum - torch.softmax(sorted_logits, -1) >= top_p  # keep the smallest set reaching top_p
                logits = logits.masked_fill(drop.scatter(1, order, drop), -torch.inf)
            tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(-1)
        tok = torch.where(done, torch.full_like(tok, pad), tok)
        out.append(tok)
        done = done | (tok == eos)
        seqs = torch.cat([seqs, tok.unsqueeze(1)], dim=1)
        if bool(done.all()):
            break
    resp = torch.stack(out, dim=1)
    if resp.shape[1] < max_new:
        resp = torch.cat([resp, torch.full((resp.shape[0], max_new - resp.shape[1]), pad)], dim=1)
    # response_mask covers the generated tokens up to and including EOS (verl's compute_response_mask)
    is_eos = (resp == eos).int()
    after_eos = (is_eos.cumsum(1) - is_eos) > 0
    mask = (~after_eos).float()
    return resp, mask


def stats(prefix: str, x) -> dict[str, float]:
    if x.numel() == 0:
        return {}
    return {f"{prefix}/mean": float(x.mean()), f"{prefix}/max": float(x.max()), f"{prefix}/min": float(x.min())}


def metric_value(v: Any) -> float | None:
    try:
        import torch

        if isinstance(v, torch.Tensor):
            return float(v.detach().float().mean()) if v.numel() else None
        return float(v)
    except (TypeError, ValueError):
        return None


def mean_metrics(acc: dict[str, list[float]]) -> dict[str, float]:
    return {k: sum(v) / len(v) for k, v in acc.items() if v}


def accumulate(acc: dict[str, list[float]], key: str, value: Any) -> None:
    v = metric_value(value)
    if v is not None:
        acc.setdefault(key, []).append(v)


def d_scores(disc, seqs, mask, P):  # noqa: N803
    """D(x, y): the discriminator's scalar at the last response token of each row (the prompt's end when empty)."""
    import torch

    from rlx.ops.gad import last_token_index

    out = disc(seqs)
    pos = P + last_token_index(mask).clamp_min(0)
    return out[torch.arange(out.shape[0]), pos]
