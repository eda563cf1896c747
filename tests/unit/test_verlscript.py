"""Reading verl launch scripts without running them: what bash would pass to the trainer, and on which line.

Every expectation here is what bash itself does with the text (checked by hand against `bash -c 'printf "%s\\n" ...'`
semantics): quoting, line continuations, parameter defaults, arithmetic, and where the trainer's arguments end.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest

from rlx.errors import ConfigError
from rlx.verlscript import parse_script


def _script(text: str):
    return parse_script(textwrap.dedent(text).lstrip("\n"), "run.sh")


def _args(text: str) -> list[tuple[str, int]]:
    return [(a.text, a.line) for a in _script(text).overrides]


def test_continuations_quotes_and_lines():
    assert _args("""
        set -x
        python3 -m verl.trainer.main_ppo \\
            algorithm.adv_estimator=grpo \\
            trainer.logger='["console","wandb"]' \\
            data.truncation="error" trainer.nnodes=1 \\
            trainer.project_name='a b'
        """) == [
        ("algorithm.adv_estimator=grpo", 3),
        ('trainer.logger=["console","wandb"]', 4),
        ("data.truncation=error", 5),
        ("trainer.nnodes=1", 5),
        ("trainer.project_name=a b", 6),
    ]


def test_variables_defaults_and_arithmetic():
    s = _script("""
        gsm8k=/data/gsm8k
        train_files="['$gsm8k/train.parquet', '$gsm8k/math.parquet']"
        BS=${BS:-1024}
        N=${N:=5}
        EMPTY=
        TP=${EMPTY:-2}
        TP2=${EMPTY-3}
        max_prompt=$((1024 * 2))
        max_resp=$((1024 * 8))
        export PROJECT='proj'
        python3 -m verl.trainer.main_ppo \\
            data.train_files="$train_files" \\
            data.train_batch_size=$BS \\
            actor_rollout_ref.rollout.n=${N} \\
            actor_rollout_ref.rollout.tensor_model_parallel_size=$TP \\
            critic.x=$TP2 \\
            data.max_prompt_length=${max_prompt} \\
            actor_rollout_ref.actor.ppo_max_token_len_per_gpu=$(((max_prompt + max_resp) * 2)) \\
            trainer.project_name=$PROJECT
        """)
    assert [a.text for a in s.overrides] == [
        "data.train_files=['/data/gsm8k/train.parquet', '/data/gsm8k/math.parquet']",
        "data.train_batch_size=1024",
        "actor_rollout_ref.rollout.n=5",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=2",  # `:-` takes the default for an empty value
        "critic.x=",  # `-` does not
        "data.max_prompt_length=2048",
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=20480",
        "trainer.project_name=proj",
    ]
    assert s.unresolved == {}


def test_unresolved_variables_are_named_with_the_lines_they_reach():
    s = _script("""
        data=$HOME/data
        python3 -m verl.trainer.main_ppo \\
            data.train_files=$data/train.parquet \\
            trainer.project_name=${PROJECT} \\
            trainer.nnodes=$(nproc) \\
            trainer.n_gpus_per_node=8
        """)
    assert s.unresolved == {"HOME": [3], "PROJECT": [4], "$(nproc)": [5]}
    # `${PROJECT}` is kept as `$PROJECT`: the braced form would read as an OmegaConf interpolation
    assert [a.text for a in s.overrides][:2] == ["data.train_files=$HOME/data/train.parquet",
                                                  "trainer.project_name=$PROJECT"]


def test_the_command_ends_at_pipes_redirects_and_script_arguments():
    s = _script("""
        PYTHONUNBUFFERED=1 python3 -m verl.trainer.main_ppo a.b=1 \\
            c.d=2 $@ 2>&1 | tee log.txt
        echo e.f=3
        """)
    assert [a.text for a in s.overrides] == ["a.b=1", "c.d=2"]
    assert [a.text for a in s.dropped] == ["$@"]
    s = _script('python3 -m verl.trainer.main_ppo a.b=1 "$@" > out.log &\n')
    assert [a.text for a in s.overrides] == ["a.b=1"]


def test_comments_are_not_commands_and_config_flags_are_read():
    s = _script("""
        # python3 -m verl.trainer.main_ppo not.this=1
        ray job submit --address=http://127.0.0.1:8265 -- python3 -m rlx.verl_entry \\
            --config-path=config --config-name='ppo_megatron_trainer' x.y=1 # trailing comment
        """)
    assert (s.entry, s.line, s.config_path, s.config_name) == ("rlx.verl_entry", 2, "config", "ppo_megatron_trainer")
    assert [(a.text, a.line) for a in s.overrides] == [("x.y=1", 3)]


def test_a_script_without_a_trainer_command_is_an_error():
    with pytest.raises(ConfigError, match="no `python -m verl.trainer.main_ppo`"):
        _script("# python3 -m verl.trainer.main_ppo\necho hello\n")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash to compare against")
def test_agrees_with_bash_on_a_typical_script(tmp_path):
    """The same script, run by bash with the trainer replaced by printf, gives the same arguments."""
    body = textwrap.dedent("""
        set -e
        model=Qwen/Qwen2.5-3B
        lens=$((512 + 512))
        NAME=${NAME:-"run one"}
        CMD -m verl.trainer.main_ppo \\
            actor_rollout_ref.model.path="$model" \\
            data.max_response_length=$lens \\
            trainer.experiment_name="$NAME" \\
            trainer.logger='["console","wandb"]' \\
            data.train_files="['/d/a.parquet', '/d/b.parquet']"
        """)
    run = tmp_path / "run.sh"
    run.write_text("CMD() { shift 2; printf '%s\\n' \"$@\"; }\n" + body.replace("CMD -m", "CMD -m"))
    env = {"PATH": "/usr/bin:/bin"}
    expected = subprocess.run(["bash", str(run)], capture_output=True, text=True, env=env, check=True).stdout
    ours = parse_script(body.replace("CMD -m", "python3 -m"), "run.sh")
    assert [a.text for a in ours.overrides] == expected.splitlines()


def test_arrays_and_unquoted_expansions_give_one_argument_per_field():
    """verl's megatron examples collect overrides in bash arrays (`"${DATA[@]}"`) or in strings expanded unquoted
    (`$ACTOR_CONFIG`); bash passes one argument per element or per whitespace-separated field."""
    s = _script("""
        DATA=(
            data.train_batch_size=64   # comment inside the array
            data.max_prompt_length=512
        )
        ACTOR="actor_rollout_ref.actor.ppo_mini_batch_size=16 \\
            actor_rollout_ref.actor.use_kl_loss=False"
        EMPTY=""
        python3 -m verl.trainer.main_ppo \\
            "${DATA[@]}" \\
            $ACTOR $EMPTY \\
            trainer.experiment_name="$ACTOR" ${@:2}
        """)
    assert [(a.text, a.line) for a in s.overrides] == [
        ("data.train_batch_size=64", 2),  # an array element keeps the line it was written on
        ("data.max_prompt_length=512", 3),
        ("actor_rollout_ref.actor.ppo_mini_batch_size=16", 10),
        ("actor_rollout_ref.actor.use_kl_loss=False", 10),
        # quoted: one argument, not split (bash removes the backslash-newline inside double quotes)
        ("trainer.experiment_name=actor_rollout_ref.actor.ppo_mini_batch_size=16     "
         "actor_rollout_ref.actor.use_kl_loss=False", 11),
    ]
    assert [a.text for a in s.dropped] == ["$@"]
