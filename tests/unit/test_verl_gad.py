"""GAD's plumbing inside verl's trainer (rlx.verl_algos.gad): pair rows, D's score position, and the critic loss whose
micro-batch pieces add up to the Bradley-Terry loss of the mini-batch, whatever the split.

Expected values are hand-derived: L_D = 1/N sum softplus(-(d_t - d_s)), dL/dd_t,i = -sigmoid(-(d_t,i - d_s,i)) / N.
The TensorDicts are built the way verl's v1 trainer holds the step batch (nested jagged rows).
"""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict

from rlx.verl_algos import gad as verl_gad


def _nested(rows):
    return torch.nested.as_nested_tensor([torch.as_tensor(r) for r in rows], layout=torch.jagged)


def _student(prompts, responses):
    ids = [p + r for p, r in zip(prompts, responses, strict=True)]
    return TensorDict(
        {
            "prompts": _nested(prompts),
            "responses": _nested(responses),
            "response_mask": _nested([[1] * len(r) for r in responses]),
            "input_ids": _nested(ids),
            "position_ids": _nested([list(range(len(i))) for i in ids]),
        },
        batch_size=[len(prompts)],
    )


def test_pair_rows_interleave_teacher_then_student_with_the_students_prompt():
    student = _student([[5, 6], [7, 8, 9]], [[1, 2, 3], [4]])
    pairs = verl_gad.pair_rows(student, [[10, 11, 99], [12, 99]])
    assert pairs.batch_size == torch.Size([4])
    rows = {f: [t.tolist() for t in pairs[f].unbind()] for f in (*verl_gad.ROW_FIELDS, "loss_mask")}
    assert rows["prompts"] == [[5, 6], [5, 6], [7, 8, 9], [7, 8, 9]]
    assert rows["responses"] == [[10, 11, 99], [1, 2, 3], [12, 99], [4]]
    assert rows["input_ids"] == [[5, 6, 10, 11, 99], [5, 6, 1, 2, 3], [7, 8, 9, 12, 99], [7, 8, 9, 4]]
    assert rows["response_mask"] == [[1, 1, 1], [1, 1, 1], [1, 1], [1]]
    assert rows["loss_mask"] == rows["response_mask"]
    assert rows["position_ids"][0] == [0, 1, 2, 3, 4] and rows["position_ids"][1] == [0, 1, 2, 3, 4]
    assert pairs[verl_gad.ROLE_FIELD].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert verl_gad.pair_keys(["a_0_0", "b_1_0"]) == [
        "a_0_0#teacher",
        "a_0_0#student",
        "b_1_0#teacher",
        "b_1_0#student",
    ]


def test_pair_rows_need_one_teacher_per_student_row():
    with pytest.raises(ValueError, match="2 teacher responses for 1 student rows"):
        verl_gad.pair_rows(_student([[5]], [[1]]), [[1], [2]])


def test_final_token_scores_read_the_last_token_of_each_sequence_and_keep_the_graph():
    values = _nested([[0.1, 0.2, 0.3], [1.0, 2.0], [7.0]]).requires_grad_()
    scores = verl_gad.final_token_scores(values)
    assert scores.tolist() == pytest.approx([0.3, 2.0, 7.0])
    scores.sum().backward()
    assert values.grad.values().tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    assert verl_gad.final_token_scores(torch.tensor([[1.0, 2.0], [3.0, 4.0]])).tolist() == [2.0, 4.0]


def test_split_pairs_refuses_a_split_or_reordered_pair():
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0])
    t, s = verl_gad.split_pairs(scores, torch.tensor([1.0, 0.0, 1.0, 0.0]))
    assert t.tolist() == [1.0, 3.0] and s.tolist() == [2.0, 4.0]
    for role in ([0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]):
        with pytest.raises(RuntimeError, match="pairing"):
            verl_gad.split_pairs(scores, torch.tensor(role))
    with pytest.raises(RuntimeError, match="pairing"):
        verl_gad.split_pairs(scores[:3], torch.tensor([1.0, 0.0, 1.0]))


def _micro(d_t, d_s, *, global_rows, dp_size=1):
    """A micro-batch as the critic sees it: model output with one (prompt+response) value row per pair row, the
    score at each row's end, and the non-tensor batch info verl's engine attaches."""
    from verl.utils import tensordict_utils as tu

    rows, role = [], []
    for t, s in zip(d_t, d_s, strict=True):
        rows += [[0.5, -0.25, t], [0.125, s]]
        role += [1.0, 0.0]
    values = _nested(rows).double().requires_grad_()
    data = TensorDict({verl_gad.ROLE_FIELD: torch.tensor(role)}, batch_size=[len(role)])
    tu.assign_non_tensor(data, global_batch_size=global_rows, dp_size=dp_size)
    return values, data


def _softplus(x):
    return math.log1p(math.exp(x))


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


D_T = [2.0, 0.0, -1.0, 0.5]
D_S = [0.0, 0.0, 1.5, 0.5]


@pytest.mark.parametrize("pairs_per_micro", [1, 2, 4])
def test_micro_batch_losses_add_up_to_the_bradley_terry_loss_of_the_mini_batch(pairs_per_micro):
    n = len(D_T)
    want = sum(_softplus(-(t - s)) for t, s in zip(D_T, D_S, strict=True)) / n
    # hand value of the first two terms: softplus(-2) = 0.126928..., softplus(0) = log 2
    assert _softplus(-2.0) == pytest.approx(0.12692801104297, abs=1e-12)
    loss_fn = verl_gad.GadCriticLoss()
    total, grads_t, grads_s = 0.0, [], []
    for lo in range(0, n, pairs_per_micro):
        values, data = _micro(D_T[lo : lo + pairs_per_micro], D_S[lo : lo + pairs_per_micro], global_rows=2 * n)
        loss, metrics = loss_fn({"values": values}, data)
        loss.backward()
        total += float(loss.detach())
        g = values.grad.values().tolist()
        rows = [len(r) for r in values.unbind()]
        ends = [sum(rows[: i + 1]) - 1 for i in range(len(rows))]
        grads_t += [g[e] for e in ends[0::2]]
        grads_s += [g[e] for e in ends[1::2]]
        assert metrics["critic/d_loss"].aggregation.value == "sum"
    assert total == pytest.approx(want, abs=1e-12)
    for i, (t, s) in enumerate(zip(D_T, D_S, strict=True)):
        assert grads_t[i] == pytest.approx(-_sigmoid(-(t - s)) / n, abs=1e-12)
        assert grads_s[i] == pytest.approx(_sigmoid(-(t - s)) / n, abs=1e-12)


def test_loss_metrics_are_the_pairs_accuracy_and_mean_scores():
    values, data = _micro(D_T, D_S, global_rows=2 * len(D_T))
    _, metrics = verl_gad.GadCriticLoss()({"values": values}, data)
    assert metrics["critic/d_acc"] == pytest.approx(0.25)  # only pair 0 has d_t > d_s; the two ties count as wrong
    assert metrics["critic/d_teacher_score_mean"] == pytest.approx(sum(D_T) / 4)
    assert metrics["critic/d_student_score_mean"] == pytest.approx(sum(D_S) / 4)


def test_dp_ranks_scale_like_verls_agg_loss():
    """With 2 ranks each rank's loss is multiplied by dp size; the all-reduced (averaged) gradient is L_D's."""
    values, data = _micro(D_T[:2], D_S[:2], global_rows=2 * len(D_T), dp_size=2)
    loss, _ = verl_gad.GadCriticLoss()({"values": values}, data)
    want = 2 * sum(_softplus(-(t - s)) for t, s in zip(D_T[:2], D_S[:2], strict=True)) / len(D_T)
    assert float(loss.detach()) == pytest.approx(want, abs=1e-12)


class _Tok:
    eos_token_id = 99

    def encode(self, text, add_special_tokens=False):
        assert add_special_tokens is False
        return [ord(c) for c in text]


def test_teacher_ids_end_with_eos_and_missing_text_is_a_config_error():
    from rlx.errors import ConfigError

    assert verl_gad.teacher_ids(_Tok(), ["12", "3"], "teacher_response") == [[49, 50, 99], [51, 99]]
    for bad in (None, "", float("nan")):
        with pytest.raises(ConfigError) as e:
            verl_gad.teacher_ids(_Tok(), ["1", bad], "teacher_response")
        assert "row 1" in str(e.value) and "teacher_response" in e.value.render()
