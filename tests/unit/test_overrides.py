"""Hydra override grammar: rlx parses with Hydra's own parser and renders values that parse back identically."""

from __future__ import annotations

import math

import pytest

from rlx.errors import ConfigError
from rlx.resolve.overrides import Op, Override, parse, render_value

VALUES = [
    None,
    True,
    False,
    0,
    -3,
    1024,
    0.2,
    3e-4,
    1e-6,
    -2.5,
    1.0,
    float("inf"),
    float("-inf"),
    "vllm",
    "seq-mean-token-mean",
    "/abs/path/train.parquet",
    "~/data/x.parquet",
    "Qwen/Qwen2.5-3B-Instruct",
    "true",
    "null",
    "1e-6",
    "010",
    "a b",
    "it's",
    "a,b",
    "x=y",
    "http://h:5000/p?q=1",
    "$(rm -rf ~)",
    "ünï",
    "",
    "${actor_rollout_ref.rollout.n}",
    ["console", "mlflow"],
    [1, 2.5, "a b"],
    [],
    {"a": 1, "b": [2, 3]},
    {},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_render_then_parse_round_trips(value):
    (ov,) = parse([f"key={render_value(value)}"])
    assert ov.op is Op.SET
    assert ov.value == value and type(ov.value) is type(value)


def test_nan_round_trips():
    (ov,) = parse([f"key={render_value(float('nan'))}"])
    assert math.isnan(ov.value)


@pytest.mark.parametrize(
    "text,op,path",
    [
        ("a.b=1", Op.SET, "a.b"),
        ("+a.b=1", Op.ADD, "a.b"),
        ("++a.b=1", Op.FORCE, "a.b"),
        ("~a.b", Op.DELETE, "a.b"),
        ("~a.b=1", Op.DELETE, "a.b"),
    ],
)
def test_operations(text, op, path):
    (ov,) = parse([text])
    assert (ov.op, ov.path, ov.text) == (op, path, text)


@pytest.mark.parametrize(
    "text,hint",
    [
        ("data.train_files=/a.parquet,/b.parquet", "data.train_files=[/a.parquet,/b.parquet]"),
        ("=1", "the key before `=` is empty"),
        ("x=$(touch marker)", "quote the value"),
        ("key with space=1", "keys cannot contain spaces"),
        ("x.y[0]=1", "index lists in the value"),
        ("a/b=x", "set the individual keys"),
    ],
)
def test_bad_overrides_name_their_text_and_a_fix(text, hint):
    with pytest.raises(ConfigError) as e:
        parse([text])
    assert f"'{text}'" in e.value.message
    assert hint in e.value.hint


def test_override_from_yaml_setting_keeps_prefix_semantics():
    assert Override.from_setting("+algorithm.rlx.aspo.k", 0.7).op is Op.ADD
    assert Override.from_setting("++x", 1).op is Op.FORCE
    assert Override.from_setting("~x", None).op is Op.DELETE
    assert Override.from_setting("x.y", [1]).render() == "x.y=[1]"


def _hydra_reading(text: str):
    """Hydra's own parse of one override, as (op, path, value type, value), or the exception type it raises."""
    from rlx.resolve.overrides import _parse_hydra

    try:
        (ov,) = _parse_hydra([text])
    except ConfigError:
        return "error"
    return ov.op, ov.path, type(ov.value), ov.value


def test_fast_path_reads_every_override_exactly_as_hydra_does():
    """rlx skips Hydra's parser for `key=word` and `key=int` (20,000 overrides would take 16 s there). Wherever the
    fast path answers, its reading must be Hydra's, type included, over shapes chosen to sit on its edges and a
    seeded random sample of short strings from the characters that matter."""
    import random

    from rlx.resolve.overrides import _fast

    edges = [
        "a=1", "a=-0", "a=+7", "a=007", "a=1_000", "a=12a", "a=a12", "a=x-y", "a=-x", "a=x-", "a=_", "a=__x",
        "a=True", "a=tRuE", "a=FALSE", "a=Null", "a=NaN", "a=inf", "a=Inf", "a=infinity", "a=nullable", "a=trueish",
        "+a.b=c", "++a.b=1", "+++a=1", "a..b=1", "a.=1", ".a=1", "a.0=1", "a.b_c.d=e", "a-b=1", "1a=1", "a=", "a==b",
        "a=b.c", "a=b/c", "a=b:c", "a=${x}", "~a", "~a=1", "a=[1]", "a='x'", "a= x", "a=x ", "a=é", "é=1",
    ]
    rng = random.Random(0)
    keys = ["a", "a.b", "+a", "++a.b", "a_1.c2", "+_x", "a.", "~a", "a-b", "+++a"]
    alphabet = "ab_019-+.=Tnxé "
    sample = [
        rng.choice(keys) + "=" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(4000)
    ]
    answered = 0
    for text in edges + sample:
        fast = _fast(text)
        if fast is None:
            continue
        answered += 1
        assert (fast.op, fast.path, type(fast.value), fast.value) == _hydra_reading(text), text
    assert answered > 300  # the sample must exercise the fast path, not only fall through to Hydra

