"""GAD inside verl 0.9.1's v1 trainer: the critic worker is the discriminator (arXiv 2511.10643).

`rlx.verl_entry.RlxTrainerMixin` calls these when `algorithm.rlx.gad.teacher_key` names the dataset column holding
each prompt's teacher response. Per step, on the driver:

1. **Pairs** (`pair_rows`). For every student row of the step batch, two rows go into the TransferQueue partition
   `rlx_gad`: the teacher's response to the same prompt, then the student's own, interleaved (teacher, student,
   teacher, student, ...). A teacher row has the student's prompt, the tokenised teacher text plus EOS as response
   (all tokens valid) and plain positions 0..L-1, as verl's agent loop writes text-only rows.
2. **Scores** (`_compute_values`). The critic scores the pair rows with verl's own `infer_batch`. D(x, y) is the value
   head's output at the final token of prompt+response (`final_token_scores`), the last response token, as rlx's
   smoke engine reads it. The student's reward is sg(D(x, y_student)) at its last response token
   (`rlx.ops.gad.gad_token_rewards`), written over the reward function's `rm_scores`; the task's own score is
   logged as `critic/task_score/mean`. `values` (D's per-token outputs on the student rows) is written too, so
   verl's critic metrics have their inputs.
3. **D's update** (`_update_critic`). verl's `train_mini_batch` runs on the pair rows with `GadCriticLoss` as the
   critic's loss (`set_loss_fn`), `force_group_size=2` and no shuffling, so a micro-batch never splits a pair (the
   loss checks it). verl's `trainer.critic_warmup` keeps the actor still while D trains alone.

`GadCriticLoss` adds softplus(-(d_t - d_s)) over a micro-batch's pairs and divides by the pairs of the whole
mini-batch (times dp size, as verl's `agg_loss` does), so the micro-batch losses sum to L_D of the mini-batch
(`rlx.ops.gad.gad_disc_loss`) and the gradient does not depend on the micro-batch split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PARTITION = "rlx_gad"
ROLE_FIELD = "rlx_gad_role"  # 1.0 on a teacher row, 0.0 on a student row
# what verl's agent loop stores per row and its engines read (agent_loop_tq.py: no attention_mask; rows are jagged)
ROW_FIELDS = ("prompts", "responses", "response_mask", "input_ids", "position_ids")
TEACHER, STUDENT = 1.0, 0.0


def _rows(value: Any) -> list[Any]:
    """The per-row 1-D tensors of a nested (jagged) or stacked [bs, L] tensor."""
    return list(value.unbind()) if getattr(value, "is_nested", False) else list(value)


def _nested(rows: Sequence[Any]) -> Any:
    import torch

    return torch.nested.as_nested_tensor(list(rows), layout=torch.jagged)


def teacher_ids(tokenizer: Any, texts: Sequence[Any], key: str) -> list[list[int]]:
    """Token ids of each teacher response plus EOS (the student's responses end with it too).

    Raises:
        ConfigError: a row has no teacher text (None, NaN or empty).
    """
    from rlx.errors import ConfigError

    eos = tokenizer.eos_token_id
    out = []
    for i, text in enumerate(texts):
        if text is None or (isinstance(text, float) and text != text) or str(text) == "":
            raise ConfigError(
                f"GAD: row {i} of the step batch has no teacher response in column {key!r}",
                where="algorithm.rlx.gad.teacher_key",
                hint=f"fill {key!r} for every training row (the teacher's answer as text)",
            )
        ids = tokenizer.encode(str(text), add_special_tokens=False)
        out.append([*ids, eos] if eos is not None else ids)
    return out


def pair_rows(student: Any, teacher: Sequence[Sequence[int]]) -> Any:
    """The interleaved (teacher, student) rows for the critic, as a TensorDict of nested tensors [2 * bs].

    Args:
        student: the step batch's `ROW_FIELDS` (nested or stacked tensors, one row per student sample).
        teacher: the teacher's token ids for each student row (its prompt's teacher response).
    """
    import torch
    from tensordict import TensorDict

    cols = {f: _rows(student[f]) for f in ROW_FIELDS}
    n = len(cols["prompts"])
    if len(teacher) != n:
        raise ValueError(f"{len(teacher)} teacher responses for {n} student rows")
    out: dict[str, list[Any]] = {f: [] for f in ROW_FIELDS}
    role = []
    for i in range(n):
        prompt = cols["prompts"][i]
        resp = torch.as_tensor(list(teacher[i]), dtype=prompt.dtype)
        ids = torch.cat([prompt, resp])
        t_row = {
            "prompts": prompt,
            "responses": resp,
            "response_mask": torch.ones(len(resp), dtype=cols["response_mask"][i].dtype),
            "input_ids": ids,
            "position_ids": torch.arange(len(ids), dtype=cols["position_ids"][i].dtype),
        }
        for f in ROW_FIELDS:
            out[f].append(t_row[f])
            out[f].append(cols[f][i])
        role += [TEACHER, STUDENT]
    fields = {f: _nested(v) for f, v in out.items()}
    fields["loss_mask"] = fields["response_mask"]  # verl's engine counts batch tokens on loss_mask
    fields[ROLE_FIELD] = torch.tensor(role, dtype=torch.float32)
    return TensorDict(fields, batch_size=[2 * n])


def pair_keys(keys: Sequence[str]) -> list[str]:
    """TransferQueue keys of the pair rows, in `pair_rows` order."""
    return [k for key in keys for k in (f"{key}#teacher", f"{key}#student")]


def final_token_scores(values: Any) -> Any:
    """D(x, y) per row [bs]: the value head's output at each sequence's final token (keeps the graph).

    `values` is the critic's full-sequence output (prompt + response), nested as verl's value engine returns it, or
    stacked [bs, L] when every row has the same length.
    """
    import torch

    if getattr(values, "is_nested", False):
        flat, offsets = values.values(), values.offsets()
        return flat[offsets[1:] - 1]
    return torch.as_tensor(values)[:, -1]


def split_pairs(scores: Any, role: Any) -> tuple[Any, Any]:
    """(teacher scores, student scores) from interleaved pair rows; a split or reordered pair is an error."""
    import torch

    role = torch.as_tensor(role).reshape(-1)
    if scores.shape[0] % 2 or not (torch.all(role[0::2] == TEACHER) and torch.all(role[1::2] == STUDENT)):
        raise RuntimeError(
            "GAD's discriminator batch lost its (teacher, student) pairing: rows must arrive "
            "interleaved and whole (force_group_size=2, no shuffle)"
        )
    return scores[0::2], scores[1::2]


class GadCriticLoss:
    """The critic's loss under GAD, `fn(model_output, data, dp_group=None)` for verl's `set_loss_fn` (picklable)."""

    def __call__(self, model_output: Any, data: Any, dp_group: Any = None) -> tuple[Any, dict[str, Any]]:
        import torch
        from verl.utils import tensordict_utils as tu
        from verl.utils.metric import AggregationType, Metric

        from rlx.ops.gad import gad_disc_loss

        teacher, student = split_pairs(final_token_scores(model_output["values"]), data[ROLE_FIELD])
        dtype = torch.promote_types(teacher.dtype, torch.float32)  # bf16 outputs are summed in float32, never less
        r = gad_disc_loss(teacher.to(dtype), student.to(dtype))
        dp_size = int(tu.get_non_tensor_data(data=data, key="dp_size", default=1) or 1)
        global_rows = tu.get_non_tensor_data(data=data, key="global_batch_size", default=None)
        pairs = teacher.numel()
        mini_pairs = int(global_rows) // 2 if global_rows else pairs
        # the micro-batch's share of the mini-batch mean: summed over micro-batches (and averaged over dp ranks by
        # the optimizer's gradient all-reduce) it is L_D of the mini-batch
        loss = r.loss * (pairs / mini_pairs) * dp_size
        summed = dp_size > 1 or global_rows is not None
        metrics = {
            "critic/d_loss": Metric(value=loss, aggregation=AggregationType.SUM if summed else AggregationType.MEAN),
            "critic/d_acc": float(r.d_acc),
            "critic/d_teacher_score_mean": float(r.teacher_score_mean),
            "critic/d_student_score_mean": float(r.student_score_mean),
        }
        return loss, metrics
