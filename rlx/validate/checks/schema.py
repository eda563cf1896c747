"""RLX1xx: the config against verl 0.9.1's schema: keys, types, ranges, removed values, inert and deprecated keys.

Hydra's compose checks none of this (`rollout.n=abc` composes); verl's dataclasses check types only inside the job.
Types come from verl's composed defaults (a default of 8 makes the key an int) plus a small table for keys whose
default is null, so verl is never imported here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from rlx import verl_keys as K
from rlx.render import fmt_value
from rlx.validate.context import Context
from rlx.validate.rules import ERROR, WARNING, Finding, declare, rule
from rlx.verl_moves import legacy_reward_target, new_home

OVERRIDE_SYNTAX = declare(
    "RLX101",
    "override syntax error",
    ERROR,
    category="schema",
    explanation="An override is not valid in Hydra's grammar, which is what `python -m verl.trainer.main_ppo` "
    "parses: a comma makes a sweep (write a list `[a,b]`), an `=` or `$` in a value needs quotes, a bare `~` needs a "
    "key after it. The problem quotes the override as written.",
)
UNKNOWN_KEY = declare(
    "RLX102",
    "unknown config key",
    ERROR,
    category="schema",
    explanation="The key is not in verl 0.9.1's ppo_trainer config, so Hydra refuses it (`Could not override`). "
    "The hint names the closest real key (`clip_ratoi` -> `clip_ratio`). To add a key verl's schema lacks on "
    "purpose, write `+key=value`.",
)
OVERRIDE_OP = declare(
    "RLX108",
    "`+` on an existing key or `~` on a missing one",
    ERROR,
    category="schema",
    explanation="`+key=value` adds a key and fails if it exists; `~key` deletes one and fails if it does not. Drop "
    "the `+` to change an existing key (or use `++` to set-or-add).",
)

# Keys whose verl default is null, with the type verl's dataclasses give them.
NULL_DEFAULT_TYPES: dict[str, type] = {
    "ppo_micro_batch_size": int,
    "ppo_micro_batch_size_per_gpu": int,
    "log_prob_micro_batch_size": int,
    "log_prob_micro_batch_size_per_gpu": int,
    "loss_scale_factor": int,
    "max_model_len": int,
    "gen_batch_size": int,
    "val_batch_size": int,
    "total_training_steps": int,
    "dro_beta": float,
    "enable": bool,
}


# Keys whose default is an int but that verl reads as counts: anything else with an int default also takes floats
# (`entropy_coeff: 0` is a float field in ActorConfig).
_INT_NAME = re.compile(r"(^n$|size|epochs|steps|length|_len|freq|nnodes|gpus|num_|rank|batch|workers|seed|_k$|limit)")


def _expected_type(key: str, default: Any) -> type | None:
    if isinstance(default, int) and not isinstance(default, bool) and not _INT_NAME.search(key.rpartition(".")[2]):
        return float
    if isinstance(default, str) and "${" in default:
        return None  # an interpolation: its type is the target's
    if default is None:
        return NULL_DEFAULT_TYPES.get(key.rpartition(".")[2])
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, str):
        return str
    if isinstance(default, list):
        return list
    if isinstance(default, dict):
        return dict
    return None


def _fits(value: Any, expected: type) -> bool:
    if value is None or (isinstance(value, str) and "${" in value):
        return True  # null is a type question verl answers per field; interpolations are checked by RLX110
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        )
    if expected is float:
        return not isinstance(value, bool) and isinstance(value, (int, float))
    if expected is str:
        # verl reads some string keys as "a path or a list of paths" (data.train_files)
        return isinstance(value, (str, int, float, list)) and not isinstance(value, bool)
    if expected is list:
        return isinstance(value, (list, str))  # verl accepts one string for list keys (trainer.logger=console)
    if expected is dict:
        return isinstance(value, dict)
    return True


_TYPE_WORD = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
}


@rule(
    "RLX103",
    "value of the wrong type",
    ERROR,
    category="schema",
    explanation="""
    Hydra's compose does not check types: `rollout.n=abc` composes, and verl fails only when it turns the section
    into a dataclass inside the job, or does arithmetic with the value. The expected type is that of verl's default
    (or, for keys whose default is null, verl's dataclass field type).""",
)
def wrong_type(ctx: Context) -> Iterator[Finding]:
    for ch in ctx.changed:
        if type(ch.value).__name__ == "_Absent" or ch.key in ctx.added:
            continue
        expected = _expected_type(ch.key, None if type(ch.default).__name__ == "_Absent" else ch.default)
        if expected is None or _fits(ch.value, expected):
            continue
        yield ctx.finding(
            ch.key,
            f"{ch.key} must be {_TYPE_WORD[expected]}, got {fmt_value(ch.value)!s} ({type(ch.value).__name__})",
            f"set {ch.key} to {_TYPE_WORD[expected]} like verl's default ({fmt_value(ch.default)})",
        )


# (path, test on the number, what it must be, hint). Checked only when the value is a number.
A = K.ACTOR
RANGES: list[tuple[str, Callable[[float], bool], str, str]] = [
    (K.CLIP_RATIO, lambda v: v >= 0, ">= 0", "clip ratios are distances from 1: use 0.2 (PPO)"),
    (K.CLIP_LOW, lambda v: v >= 0, ">= 0", "clip ratios are distances from 1: use 0.2 (PPO)"),
    (K.CLIP_HIGH, lambda v: v >= 0, ">= 0", "clip ratios are distances from 1: use 0.2 or 0.28 (DAPO)"),
    (K.CLIP_C, lambda v: v > 1, "> 1", "the dual-clip bound must exceed 1: use 3.0 (verl's default)"),
    (K.PPO_EPOCHS, lambda v: v >= 1, ">= 1", "use 1 (one pass over each rollout batch)"),
    (K.PPO_MINI_BATCH, lambda v: v >= 1, ">= 1", "use data.train_batch_size / 4"),
    (K.PPO_MICRO_BATCH_PER_GPU, lambda v: v >= 1, ">= 1", "use 1-8, as memory allows"),
    (f"{A}.ppo_micro_batch_size", lambda v: v >= 1, ">= 1", "use ppo_micro_batch_size_per_gpu instead"),
    (K.KL_LOSS_COEF, lambda v: v >= 0, ">= 0", "use 0.001 (verl) to 0.04 (GRPO paper), or use_kl_loss=false"),
    (K.KL_CTRL_COEF, lambda v: v >= 0, ">= 0", "use 0.001, or algorithm.use_kl_in_reward=false"),
    (K.LOSS_SCALE_FACTOR, lambda v: v > 0, "> 0", "use data.max_response_length"),
    (K.ROLLOUT_N, lambda v: v >= 1, ">= 1", "rollout.n is the number of responses per prompt"),
    (K.TEMPERATURE, lambda v: v >= 0, ">= 0", "use 1.0 for RL sampling"),
    (K.TOP_P, lambda v: 0 < v <= 1, "in (0, 1]", "use 1.0"),
    (f"{K.ROLLOUT}.gpu_memory_utilization", lambda v: 0 < v <= 1, "in (0, 1]", "use 0.5-0.9"),
    (f"{K.ROLLOUT}.tensor_model_parallel_size", lambda v: v >= 1, ">= 1", "use 1, 2, 4 or 8"),
    (f"{K.ROLLOUT}.val_kwargs.temperature", lambda v: v >= 0, ">= 0", "use 0 (greedy) or 1.0"),
    (K.GAMMA, lambda v: 0 <= v <= 1, "in [0, 1]", "use 1.0 for outcome rewards"),
    (K.LAM, lambda v: 0 <= v <= 1, "in [0, 1]", "use 1.0 (verl) or 0.95"),
    (K.TAU_POS, lambda v: v > 0, "> 0", "use 1.0 (SAPO paper)"),
    (K.TAU_NEG, lambda v: v > 0, "> 0", "use 1.05 (SAPO paper)"),
    (K.TRAIN_BATCH, lambda v: v >= 1, ">= 1", "the number of prompts per step, e.g. 256"),
    (K.MAX_PROMPT_LEN, lambda v: v >= 1, ">= 1", "e.g. 512"),
    (K.MAX_RESPONSE_LEN, lambda v: v >= 1, ">= 1", "e.g. 1024"),
    ("data.gen_batch_size", lambda v: v >= 1, ">= 1", "omit it (null) to use data.train_batch_size"),
    ("trainer.total_epochs", lambda v: v >= 1, ">= 1", "e.g. 15"),
    ("trainer.total_training_steps", lambda v: v >= 1, ">= 1", "omit it (null) to train for total_epochs"),
    (f"{A}.optim.lr", lambda v: v >= 0, ">= 0", "use 1e-6"),
    ("critic.optim.lr", lambda v: v >= 0, ">= 0", "use 1e-5"),
    (f"{A}.optim.weight_decay", lambda v: v >= 0, ">= 0", "use 0.01 or 0.1"),
    (f"{A}.grad_clip", lambda v: v > 0, "> 0", "use 1.0"),
    (f"{A}.optim.lr_warmup_steps_ratio", lambda v: 0 <= v <= 1, "in [0, 1]", "a fraction of the training steps"),
    ("critic.ppo_micro_batch_size_per_gpu", lambda v: v >= 1, ">= 1", "use 1-8, as memory allows"),
    (f"{K.ROLLOUT}.log_prob_micro_batch_size_per_gpu", lambda v: v >= 1, ">= 1", "use 8-32, as memory allows"),
    (f"{K.REF}.log_prob_micro_batch_size_per_gpu", lambda v: v >= 1, ">= 1", "use 8-32, as memory allows"),
]


@rule(
    "RLX104",
    "value out of range",
    ERROR,
    category="schema",
    explanation="""
    A number outside the range where it means anything: a negative clip ratio, ppo_epochs=0, rollout.n=0, a negative
    temperature, top_p outside (0, 1], gamma or lambda outside [0, 1], a dual-clip bound <= 1, a negative learning
    rate. verl checks almost none of these; most fail deep in training or train silently on nonsense.""",
)
def out_of_range(ctx: Context) -> Iterator[Finding]:
    for path, ok, must, hint in RANGES:
        v = ctx.num(path)
        if v is not None and not ok(v):
            yield ctx.finding(
                path, f"{path}={fmt_value(v)} is out of range: it must be {must}", _range_hint(path, hint)
            )


def _range_hint(path: str, hint: str) -> str:
    """`set path=N: why` from a RANGES hint's first `use N`, so the hint is an override the user can paste."""
    m = re.search(r"\buse (-?[\d.]+(?:e-?\d+)?)\b", hint)
    return f"set {path}={m.group(1)}: {hint}" if m else f"set {path}: {hint}"


@rule(
    "RLX105",
    "learning rate is zero",
    WARNING,
    category="schema",
    explanation="""
    With lr=0 the optimizer never changes the weights: the run spends its GPUs and learns nothing. Sometimes useful
    for a dry pipeline test, hence a warning.""",
)
def zero_lr(ctx: Context) -> Iterator[Finding]:
    paths = [f"{A}.optim.lr"] + (["critic.optim.lr"] if ctx.uses_critic else [])
    for path in paths:
        if ctx.num(path) == 0:
            yield ctx.finding(path, f"{path}=0: the weights never change", f"set {path}=1e-6 (actor) or 1e-5 (critic)")


REMOVED_VALUES: dict[str, dict[Any, str]] = {
    f"{K.ROLLOUT}.mode": {"sync": "Rollout mode 'sync' has been removed; verl 0.9.1 only rolls out asynchronously"},
    K.ROLLOUT_NAME: {
        "hf": "the HuggingFace rollout was removed; verl 0.9.1 rolls out with vllm, sglang or trtllm",
        "naive": "the naive rollout was removed; verl 0.9.1 rolls out with vllm, sglang or trtllm",
    },
}
REMOVED_HINTS = {f"{K.ROLLOUT}.mode": "remove the setting (async is the default)", K.ROLLOUT_NAME: "set it to vllm"}


@rule(
    "RLX106",
    "value removed from verl",
    ERROR,
    category="schema",
    explanation="""
    A value earlier verl versions accepted and 0.9.1 refuses: `rollout.mode=sync` (RolloutConfig raises
    "Rollout mode 'sync' has been removed"), `rollout.name=hf`. Old example scripts still use them.""",
)
def removed_value(ctx: Context) -> Iterator[Finding]:
    for path, values in REMOVED_VALUES.items():
        v = ctx.value(path)
        if isinstance(v, str) and v in values:
            yield ctx.finding(path, f"{path}={v}: {values[v]}", REMOVED_HINTS[path])


@rule(
    "RLX107",
    "legacy reward setting that main_ppo ignores",
    ERROR,
    category="schema",
    explanation="""
    verl 0.9.1 keeps the old top-level `reward_model.*`, `custom_reward_function.*` and `sandbox_fusion.*` sections in
    its config, but `verl.trainer.main_ppo` never reads them: only the fully-async entry point migrates them (verl's
    `migrate_legacy_reward_impl`). A DAPO overlong penalty under `reward_model.reward_kwargs`, a reward manager under
    `reward_model.reward_manager` or a custom reward under `custom_reward_function.path` is silently dropped. The
    user's intent is lost, so this is an error; the hint gives the key under `reward.` that main_ppo reads, as
    `migrate_legacy_reward_impl` maps it, or says that the key has no home in verl 0.9.1.""",
)
def legacy_reward(ctx: Context) -> Iterator[Finding]:
    for ch in ctx.changed:
        target = legacy_reward_target(ch.key)
        if target is None or ch.value is None or type(ch.value).__name__ == "_Absent":
            continue
        message = (
            f"{ch.key}={fmt_value(ch.value)} is a legacy setting that verl 0.9.1's main_ppo never reads: it is "
            "silently dropped"
        )
        if target:
            # `+` or not is decided for every hint in one place (rlx.validate._plus_in_hint)
            hint = f"write `{target}={fmt_value(ch.value)}` instead"
            engine = "reward.reward_model.rollout.name"
            if target == "reward.reward_model.enable" and ch.value is True and ctx.leaves.get(engine) == "???":
                # An enabled reward model needs its inference engine (RLX111): the fix names both.
                legacy = ctx.value("reward_model.rollout.name") or "vllm"
                hint = f"write `{target}=true {engine}={legacy}` instead (an enabled reward model needs an engine)"
        else:
            hint = f"remove it: verl 0.9.1 has no setting {ch.key} moves to (migrate_legacy_reward_impl drops it)"
        yield ctx.finding(ch.key, message, hint)


DEPRECATED: dict[str, str] = {
    f"{A}.ppo_micro_batch_size": f"set {A}.ppo_micro_batch_size_per_gpu instead (the global size is deprecated)",
    f"{K.ROLLOUT}.log_prob_micro_batch_size": f"set {K.ROLLOUT}.log_prob_micro_batch_size_per_gpu instead",
    f"{K.REF}.log_prob_micro_batch_size": f"set {K.REF}.log_prob_micro_batch_size_per_gpu instead",
    "critic.ppo_micro_batch_size": "set critic.ppo_micro_batch_size_per_gpu instead",
    "data.val_batch_size": "remove it: validation batches are sent to the inference engine whole",
}


@rule(
    "RLX109",
    "deprecated setting",
    WARNING,
    category="schema",
    explanation="""
    Settings verl 0.9.1 still accepts but has deprecated: the global micro batch sizes (use the `_per_gpu` forms),
    `data.val_batch_size` (ignored), and `trainer.use_v1=false` (the legacy trainer, announced for removal).""",
)
def deprecated(ctx: Context) -> Iterator[Finding]:
    for path, hint in DEPRECATED.items():
        if ctx.value(path) is not None:
            yield ctx.finding(path, f"{path} is deprecated in verl 0.9.1", hint)
    # ReMax needs the legacy trainer (RLX446): the deprecation hint would lead straight into that error.
    if ctx.get(K.USE_V1) is False and ctx.get(K.ADV_ESTIMATOR) != "remax":
        yield ctx.finding(
            K.USE_V1,
            "trainer.use_v1=false selects verl's legacy trainer (main_ppo_v0), which is "
            "deprecated and lacks group filtering",
            "set trainer.use_v1=true",
        )


@rule(
    "RLX110",
    "broken interpolation",
    ERROR,
    category="schema",
    explanation="""
    A `${...}` reference that cannot be resolved: it points to a missing key, or it is cyclic. verl resolves the whole
    config at start-up (`OmegaConf.resolve`) and fails there. Environment references `${oc.env:VAR}` are not resolved
    here: they describe the cluster, not this machine.""",
)
def broken_interpolation(ctx: Context) -> Iterator[Finding]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for ch in ctx.changed:
        if not (isinstance(ch.value, str) and "${" in ch.value) or "${oc.env:" in ch.value:
            continue
        try:
            OmegaConf.select(ctx.resolved.config, ch.key, throw_on_resolution_failure=True)
        except OmegaConfBaseException as e:
            yield ctx.finding(
                ch.key,
                f"{ch.key}={ch.value} cannot be resolved: {str(e).splitlines()[0]}",
                "point the reference at an existing key, e.g. ${data.max_response_length}",
            )


@rule(
    "RLX113",
    "environment variable not set here",
    WARNING,
    category="schema",
    explanation="""
    A `${oc.env:VAR}` reference with no default, while VAR is not set in this environment. It is resolved by the job
    on the cluster, where VAR may well be set; if it is not, verl fails at start-up. Only the variable's name is
    reported, never a value.""",
)
def unset_env_reference(ctx: Context) -> Iterator[Finding]:
    import os

    for ch in ctx.changed:
        if not isinstance(ch.value, str) or "${oc.env:" not in ch.value:
            continue
        for name, default in re.findall(r"\$\{oc\.env:\s*([A-Za-z_][A-Za-z0-9_]*)\s*(,[^}]*)?\}", ch.value):
            if not default and name not in os.environ:
                yield ctx.finding(
                    ch.key,
                    f"{ch.key} reads ${{oc.env:{name}}}, and {name} is not set here",
                    f"set {name} on the cluster's nodes, or give a default: ${{oc.env:{name},VALUE}}",
                )


@rule(
    "RLX111",
    "required value not set",
    ERROR,
    category="schema",
    explanation="""
    verl marks some keys `???` (mandatory): most importantly `actor_rollout_ref.rollout.name`, which has no default.
    The job fails at start-up with MissingMandatoryValue. rlx presets set it to vllm.""",
)
def mandatory(ctx: Context) -> Iterator[Finding]:
    for key, value in ctx.leaves.items():
        if value != "???":
            continue
        if key.startswith("reward.reward_model.") and not ctx.flag("reward.reward_model.enable"):
            continue  # only read when a reward model is enabled
        if key.startswith(("reward_model.", "critic.")) and not (key.startswith("critic.") and ctx.uses_critic):
            continue
        hint = f"set {key}=vllm (or sglang, trtllm)" if key.endswith("rollout.name") else f"set {key}"
        yield ctx.finding(key, f"{key} is required (`???` in verl's config) and not set", hint)


# Sections verl turns into strict dataclasses (omega_conf_to_dataclass): a key they lack fails the merge.
STRICT_ROOTS = ("actor_rollout_ref.", "critic.")


@rule(
    "RLX112",
    "key added to a strict verl section",
    ERROR,
    category="schema",
    explanation="""
    `+key=value` adds a key Hydra's schema lacks, and Hydra accepts it. But verl turns the actor, rollout, ref, model
    and critic sections into dataclasses (`omega_conf_to_dataclass`), and a key the dataclass lacks fails that
    merge inside the job. Free-form maps such as `model.override_config` and `rollout.engine_kwargs` accept new keys;
    algorithm knobs belong under `algorithm.rlx.*` or `reward.reward_kwargs.*`.""",
)
def added_to_strict(ctx: Context) -> Iterator[Finding]:
    for path in sorted(ctx.added):
        if not path.startswith(STRICT_ROOTS):
            continue
        parent = path.rpartition(".")[0]
        while parent and parent not in ctx.default_nodes:
            parent = parent.rpartition(".")[0]
        target = ctx.defaults.get(f"{parent}._target_")
        if isinstance(target, str) and target.startswith("verl."):
            kind, home = new_home(path, lambda k: k in ctx.defaults)
            if kind == "moved":
                hint = f"write `{home}={fmt_value(ctx.value(path))}` instead (verl 0.9.1 moved it)"
            elif kind == "removed":
                hint = f"delete it: verl 0.9.1 removed it ({home})"
            else:
                hint = "remove it, or put algorithm settings under `+algorithm.rlx.<algo>.*`"
            yield ctx.finding(
                path,
                f"{path} is not a field of {target.rpartition('.')[2]}: verl's dataclass conversion will fail inside "
                "the job",
                hint,
            )


MAX_NAME = 128  # a path component (checkpoints/<project>/<name>) and an MLflow name, with room to spare
NAME_KEYS = (K.PROJECT_NAME, K.EXPERIMENT_NAME)


def name_problem(value: object) -> str | None:
    """Why a project or run name cannot name a folder (None when it can). Spaces and Unicode are fine."""
    if not isinstance(value, str) or "${" in value:
        return None
    if "/" in value or "\\" in value or value.strip() in (".", ".."):
        return "contains a path separator or is a relative path"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains control characters"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):  # bytes that are not UTF-8, as Python's argv keeps them
        return "contains bytes that are not UTF-8"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long (at most {MAX_NAME})"
    if not value.strip():
        return "is empty"
    return None


def plain_name(value: str) -> str:
    """A name close to `value` that `name_problem` accepts."""
    out = "".join(
        "-" if c in "/\\" else c for c in value if ord(c) >= 32 and ord(c) != 127 and not 0xD800 <= ord(c) <= 0xDFFF
    ).strip(" .")[:MAX_NAME]
    return out or "my-run-1"


@rule(
    "RLX114",
    "project or run name unusable as a folder name",
    ERROR,
    category="schema",
    explanation="""
    trainer.project_name and trainer.experiment_name name the MLflow experiment and run, and verl checkpoints to
    `trainer.default_local_dir=checkpoints/${trainer.project_name}/${trainer.experiment_name}`: a name with `/` or
    `\\`, `.` or `..`, control characters, more than 128 characters, or nothing but spaces escapes or breaks that
    path. `rlx train` refuses it before anything is created; `rlx validate` reports it, so both agree.""",
)
def unusable_name(ctx: Context) -> Iterator[Finding]:
    from rlx.resolve.overrides import render_value

    for key in NAME_KEYS:
        value = ctx.value(key)
        problem = name_problem(value)
        if problem:
            shown = value if len(value) <= 60 else value[:57] + "..."
            what = "experiment" if key == K.PROJECT_NAME else "run"
            flag = "--experiment" if key == K.PROJECT_NAME else "--name"
            plain = plain_name(value)
            yield ctx.finding(
                key,
                f"{key} {shown!r} {problem}: it names the MLflow {what} and the checkpoint folder",
                f"pick a plain name: `{key}={render_value(plain)}` (`rlx train {flag}` sets the same key)",
            )


# Free-form sections: Hydra accepts any `+key` below them, so a misspelt key composes and is silently ignored.
FREE_FORM = {"algorithm.": "algorithm", "reward.reward_kwargs.": "reward_kwargs"}


@rule(
    "RLX115",
    "key nobody reads in a free-form section",
    ERROR,
    category="schema",
    explanation="""
    `algorithm` stays a plain DictConfig in verl's v1 trainer and `reward.reward_kwargs` is a plain map, so
    `+algorithm.norm_adv_by_std_in_grpoo=false` or `+reward.reward_kwargs.overlong_buffer_cfg.length=512` compose and
    are silently ignored. The keys verl reads there are read statically from its source (AlgoConfig's fields, nested
    dataclasses expanded; the reward managers' `reward_kwargs` reads); `algorithm.rlx.*` belongs to rlx's plugin.
    A `+` key outside both is an error, with a did-you-mean.""",
)
def unread_free_form(ctx: Context) -> Iterator[Finding]:
    from rlx.errors import did_you_mean
    from rlx.validate import verl_names

    extras = verl_names.verl_static_extras()
    for path in sorted(ctx.added):
        prefix = next((p for p in FREE_FORM if path.startswith(p)), None)
        if prefix is None:
            continue
        rest = path[len(prefix) :]
        if prefix == "algorithm.":
            if rest == "rlx" or rest.startswith("rlx."):
                continue  # rlx's plugin options (algorithm.rlx.<algo>.*)
            known, free = extras["algorithm"], extras["algorithm_free"]
        else:
            known, free = extras["reward_kwargs"], []
        if rest in known or rest.startswith(tuple(free)):
            continue
        if any(k.startswith(rest + ".") for k in known):
            continue  # a whole sub-section given as one mapping
        # Compare like with like: a nested key against keys of its own depth first, so `.length` finds `.len`.
        depth = rest.count(".")
        same = [k for k in known if k.count(".") == depth]
        close = did_you_mean(rest, same, n=1, cutoff=0.6) or did_you_mean(rest, known, n=1, cutoff=0.6)
        value = fmt_value(ctx.value(path))
        hint = (
            f"did you mean `{prefix}{close[0]}={value}`?"
            if close
            else f"remove it: nothing reads it (verl reads {', '.join(prefix + k for k in known if '.' not in k)})"
        )
        yield ctx.finding(
            path, f"{path} is read by neither verl {_verl_version()} nor rlx's plugin: it is silently ignored", hint
        )


def _verl_version() -> str:
    from rlx import VERL_VERSION

    return VERL_VERSION
