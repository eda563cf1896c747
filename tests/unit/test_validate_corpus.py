"""The broken-config corpus: every case names the rule code AND the config path the validator must report.

Cases cover every category (input, schema, verl's own checks, names, algorithm constraints, resources), through
`--algo` presets, `--verl` overrides, experiment/preset files and full verl config files. The verl example scripts
whose keys no longer exist in verl 0.9.1 live in tests/data/validate/verl_examples/broken/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rlx.validate import validate_source

DATA = Path(__file__).resolve().parents[1] / "data" / "validate"
A = "actor_rollout_ref.actor"
R = "actor_rollout_ref.rollout"

# (id, algo or None for --verl, overrides, expected code, expected path)
OVERRIDE_CASES = [
    # schema
    ("sweep-comma", "grpo", ["trainer.logger=console,mlflow"], "RLX101", "trainer.logger"),
    ("bare-tilde-value", "grpo", ["data.train_files=~/data/gsm8k/train.parquet"], "RLX101", "data.train_files"),
    ("equals-in-value", "grpo", ["trainer.experiment_name=a=b"], "RLX101", "trainer.experiment_name"),
    ("empty-key", "grpo", ["=1"], "RLX101", ""),
    ("typo-key", "grpo", [f"{A}.clip_ratoi=0.2"], "RLX102", f"{A}.clip_ratoi"),
    ("typo-section", "grpo", ["trainr.total_epochs=3"], "RLX102", "trainr.total_epochs"),
    ("plus-existing", "grpo", [f"+{R}.n=4"], "RLX108", f"{R}.n"),
    ("delete-missing", "grpo", ["~trainer.no_such_key"], "RLX108", "trainer.no_such_key"),
    ("type-int", "grpo", [f"{R}.n=abc"], "RLX103", f"{R}.n"),
    ("type-bool", "grpo", [f"{A}.use_kl_loss=sometimes"], "RLX103", f"{A}.use_kl_loss"),
    ("type-fraction", "grpo", [f"{A}.ppo_mini_batch_size=2.5"], "RLX103", f"{A}.ppo_mini_batch_size"),
    ("negative-clip", "grpo", [f"{A}.clip_ratio_low=-0.1"], "RLX104", f"{A}.clip_ratio_low"),
    ("zero-epochs", "grpo", [f"{A}.ppo_epochs=0"], "RLX104", f"{A}.ppo_epochs"),
    ("top-p", "grpo", [f"{R}.top_p=1.5"], "RLX104", f"{R}.top_p"),
    ("gamma", "ppo", ["algorithm.gamma=1.5"], "RLX104", "algorithm.gamma"),
    ("dual-clip", "grpo", [f"{A}.clip_ratio_c=0.5"], "RLX104", f"{A}.clip_ratio_c"),
    ("sapo-tau", "sapo", [f"{A}.tau_neg=-1.0"], "RLX104", f"{A}.tau_neg"),
    ("zero-lr", "grpo", [f"{A}.optim.lr=0"], "RLX105", f"{A}.optim.lr"),
    ("env-unset", "grpo", ["trainer.project_name=${oc.env:RLX_CORPUS_SURELY_UNSET}"], "RLX113", "trainer.project_name"),
    ("sync-mode", "grpo", [f"{R}.mode=sync"], "RLX106", f"{R}.mode"),
    ("hf-rollout", "grpo", [f"{R}.name=hf"], "RLX106", f"{R}.name"),
    ("legacy-overlong", "dapo", ["+reward_model.reward_kwargs.max_resp_len=8192"], "RLX107",
     "reward_model.reward_kwargs.max_resp_len"),
    ("legacy-custom-reward", "grpo", ["custom_reward_function.path=/tmp/my_reward.py"], "RLX107",
     "custom_reward_function.path"),
    ("legacy-reward-manager", "grpo", ["reward_model.reward_manager=dapo"], "RLX107", "reward_model.reward_manager"),
    ("deprecated-val-batch", "grpo", ["data.val_batch_size=16"], "RLX109", "data.val_batch_size"),
    ("broken-interpolation", "grpo", ["data.max_response_length=${data.nope}"], "RLX110", "data.max_response_length"),
    ("rollout-name-missing", None, ["algorithm.adv_estimator=grpo", f"{R}.n=8"], "RLX111", f"{R}.name"),
    ("algorithm-key-typo", "grpo", ["+algorithm.norm_adv_by_std_in_grpoo=false"], "RLX115",
     "algorithm.norm_adv_by_std_in_grpoo"),
    ("reward-kwargs-nested-typo", "dapo", ["+reward.reward_kwargs.overlong_buffer_cfg.length=512"], "RLX115",
     "reward.reward_kwargs.overlong_buffer_cfg.length"),
    ("plus-into-actor", "grpo", [f"+{A}.my_coef=0.1"], "RLX112", f"{A}.my_coef"),
    ("name-with-slash", "grpo", ["trainer.experiment_name=a/b"], "RLX114", "trainer.experiment_name"),
    # verl's own checks
    ("batch-divisible", "grpo", ["data.train_batch_size=10", f"{R}.n=5", f"{A}.ppo_mini_batch_size=4"], "RLX201",
     "data.train_batch_size"),
    ("micro-unset-verl", None, ["algorithm.adv_estimator=grpo", f"{R}.name=vllm", f"{R}.n=8"], "RLX203",
     f"{A}.ppo_micro_batch_size_per_gpu"),
    ("micro-twice", "grpo", [f"{A}.ppo_micro_batch_size=8"], "RLX204", f"{A}.ppo_micro_batch_size"),
    ("mini-gt-train", "grpo", ["data.train_batch_size=16", f"{A}.ppo_mini_batch_size=32"], "RLX205",
     f"{A}.ppo_mini_batch_size"),
    ("mini-not-divisible", "grpo", [f"{A}.ppo_mini_batch_size=8", f"{A}.ppo_micro_batch_size=3",
                                    f"{A}.ppo_micro_batch_size_per_gpu=null", "trainer.n_gpus_per_node=1"],
     "RLX206", f"{A}.ppo_micro_batch_size"),
    ("micro-below-gpus", "grpo", [f"{A}.ppo_micro_batch_size=4", f"{A}.ppo_micro_batch_size_per_gpu=null"], "RLX207",
     f"{A}.ppo_micro_batch_size"),
    ("loss-agg-mode", "grpo", [f"{A}.loss_agg_mode=foo"], "RLX208", f"{A}.loss_agg_mode"),
    ("rollout-logprob-micro", "grpo", [f"{R}.log_prob_micro_batch_size_per_gpu=null"], "RLX203",
     f"{R}.log_prob_micro_batch_size_per_gpu"),
    ("ref-logprob-micro", "grpo", ["actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=null",
                                   f"{A}.use_kl_loss=true"], "RLX203",
     "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu"),
    ("critic-micro", "ppo", ["critic.ppo_micro_batch_size_per_gpu=null"], "RLX203", "critic.ppo_micro_batch_size_per_gpu"),
    ("critic-mini-gt-train", "ppo", ["data.train_batch_size=16", "critic.ppo_mini_batch_size=32",
                                     f"{A}.ppo_mini_batch_size=16"], "RLX205", "critic.ppo_mini_batch_size"),
    ("sp-needs-rmpad", "grpo", [f"{A}.ulysses_sequence_parallel_size=2",
                                "actor_rollout_ref.model.use_remove_padding=false"], "RLX211",
     "actor_rollout_ref.model.use_remove_padding"),
    ("val-sampling-temp", "grpo", [f"{R}.val_kwargs.do_sample=true", f"{R}.temperature=0"], "RLX213", f"{R}.temperature"),
    ("lora-rank", "grpo", ["actor_rollout_ref.model.lora_rank=1024"], "RLX215", "actor_rollout_ref.model.lora_rank"),
    # names
    ("loss-typo", "gspo", [f"{A}.policy_loss.loss_mode=gspoo"], "RLX302", f"{A}.policy_loss.loss_mode"),
    ("estimator-typo", "grpo", ["algorithm.adv_estimator=grpoo"], "RLX301", "algorithm.adv_estimator"),
    ("kl-type", "grpo", [f"{A}.use_kl_loss=true", f"{A}.kl_loss_type=low_var"], "RLX303", f"{A}.kl_loss_type"),
    ("rollout-engine", "grpo", [f"{R}.name=vlm"], "RLX305", f"{R}.name"),
    ("reward-manager-typo", "grpo", ["reward.reward_manager.name=dapoo"], "RLX306", "reward.reward_manager.name"),
    ("critic-loss-agg-mode", "ppo", ["critic.loss_agg_mode=token_mean"], "RLX307", "critic.loss_agg_mode"),
    ("opo-n1", "ppo", ["algorithm.adv_estimator=opo", f"{R}.n=1"], "RLX308", f"{R}.n"),
    ("verl-gpg-n1", None, ["algorithm.adv_estimator=gpg", f"{R}.name=vllm", f"{A}.ppo_micro_batch_size_per_gpu=4",
                           f"{R}.log_prob_micro_batch_size_per_gpu=8"], "RLX308", f"{R}.n"),
    # algorithm constraints
    ("grpo-n1", "grpo", [f"{R}.n=1"], "RLX401", f"{R}.n"),
    ("grpo-n2", "grpo", [f"{R}.n=2"], "RLX402", f"{R}.n"),
    ("kl-twice", "grpo", [f"{A}.use_kl_loss=true", "algorithm.use_kl_in_reward=true"], "RLX403",
     "algorithm.use_kl_in_reward"),
    ("gspo-agg", "gspo", [f"{A}.loss_agg_mode=token-mean"], "RLX404", f"{A}.loss_agg_mode"),
    ("critic-free-critic", "grpo", ["critic.enable=true"], "RLX405", "critic.enable"),
    ("ppo-no-critic", "ppo", ["critic.enable=false"], "RLX410", "critic.enable"),
    ("gspo-token-clip", "gspo", [f"{A}.clip_ratio_low=0.2", f"{A}.clip_ratio_high=0.28"], "RLX420",
     f"{A}.clip_ratio_high"),
    ("drgrpo-vectorized", "drgrpo", ["algorithm.adv_estimator=grpo_vectorized"], "RLX430", "algorithm.adv_estimator"),
    ("drgrpo-no-constant", "drgrpo", [f"{A}.loss_scale_factor=null"], "RLX431", f"{A}.loss_scale_factor"),
    ("drgrpo-constant-apart", "drgrpo", [f"{A}.loss_scale_factor=1024"], "RLX432", f"{A}.loss_scale_factor"),
    ("dapo-overlong", "dapo", ["reward.reward_kwargs.overlong_buffer_cfg.len=30000"], "RLX440",
     "reward.reward_kwargs.overlong_buffer_cfg.len"),
    # a shorter generation limit on DAPO: the penalty length must follow, and the 4096-token buffer no longer fits
    ("dapo-short-response", "dapo", ["data.max_response_length=1024"], "RLX442", "reward.reward_kwargs.max_resp_len"),
    ("dapo-overlong-equal", "dapo", ["reward.reward_kwargs.overlong_buffer_cfg.len=20480"], "RLX440",
     "reward.reward_kwargs.overlong_buffer_cfg.len"),
    ("dapo-overlong-zero", "dapo", ["reward.reward_kwargs.overlong_buffer_cfg.len=0"], "RLX440",
     "reward.reward_kwargs.overlong_buffer_cfg.len"),
    ("dapo-filter-n1", "dapo", [f"{R}.n=1"], "RLX441", f"{R}.n"),
    ("dapo-v0", "dapo", ["trainer.use_v1=false"], "RLX445", "algorithm.filter_groups.enable"),
    ("gmpo-dynamic", "gmpo", [f"{A}.use_dynamic_bsz=true"], "RLX450", f"{A}.use_dynamic_bsz"),
    ("cispo-low", "cispo", [f"{A}.clip_ratio_low=0.2"], "RLX460", f"{A}.clip_ratio_low"),
    ("sapo-tau-zero", "sapo", [f"{A}.tau_pos=0"], "RLX470", f"{A}.tau_pos"),
    ("aspo-k", "aspo", ["algorithm.rlx.aspo.k=1.5"], "RLX480", "algorithm.rlx.aspo.k"),
    ("aspo-delta", "aspo", ["algorithm.rlx.aspo.delta=0"], "RLX481", "algorithm.rlx.aspo.delta"),
    ("vapo-alpha", "vapo", ["algorithm.rlx.vapo.alpha=0"], "RLX495", "algorithm.rlx.vapo.alpha"),
    ("vapo-nll-shuffled", "vapo", [f"{A}.shuffle=true"], "RLX499", f"{A}.shuffle"),
    ("gad-no-teacher", "gad", ["algorithm.rlx.gad.teacher_key=null"], "RLX465", "algorithm.rlx.gad.teacher_key"),
    ("gad-no-critic", "gad", ["critic.enable=false"], "RLX466", "critic.enable"),
    ("gad-n1", "gad", [f"{R}.n=1"], "RLX401", f"{R}.n"),
    ("gad-no-warmup", "gad", ["trainer.critic_warmup=0"], "RLX467", "trainer.critic_warmup"),
    ("gad-custom-reward", "gad", ["reward.custom_reward_function.path=/tmp/reward.py"], "RLX468",
     "reward.reward_model.enable"),
    ("clip-ratio-alone", "grpo", [f"{A}.clip_ratio=0.1"], "RLX406", f"{A}.clip_ratio"),
    ("tau-with-vanilla", "grpo", [f"{A}.tau_pos=2.0"], "RLX407", f"{A}.tau_pos"),
    ("verl-grpo-n1", None, ["algorithm.adv_estimator=grpo", f"{R}.name=vllm", f"{A}.ppo_micro_batch_size_per_gpu=4",
                            f"{R}.log_prob_micro_batch_size_per_gpu=8"], "RLX401", f"{R}.n"),
    ("verl-gae-no-critic", None, ["algorithm.adv_estimator=gae", "critic.enable=false", f"{R}.name=vllm",
                                  f"{A}.ppo_micro_batch_size_per_gpu=4", f"{R}.log_prob_micro_batch_size_per_gpu=8"],
     "RLX410", "critic.enable"),
    # resources
    ("no-gpus", "grpo", ["trainer.n_gpus_per_node=0"], "RLX501", "trainer.n_gpus_per_node"),
    ("tp-does-not-divide", "grpo", [f"{R}.tensor_model_parallel_size=3"], "RLX502", f"{R}.tensor_model_parallel_size"),
    ("context-length", "grpo", [f"{R}.max_model_len=1000", "data.max_prompt_length=512",
                                "data.max_response_length=1024"], "RLX503", f"{R}.max_model_len"),
    ("dynamic-mini-gt-train", "grpo", [f"{A}.use_dynamic_bsz=true", "data.train_batch_size=16",
                                       f"{A}.ppo_mini_batch_size=32"], "RLX505", f"{A}.ppo_mini_batch_size"),
    ("dynamic-batch-divisible", "grpo", [f"{A}.use_dynamic_bsz=true", "data.train_batch_size=10", f"{R}.n=5",
                                         f"{A}.ppo_mini_batch_size=4"], "RLX506", "data.train_batch_size"),
    ("dynamic-budget", "grpo", [f"{A}.use_dynamic_bsz=true", f"{A}.ppo_max_token_len_per_gpu=100"], "RLX504",
     f"{A}.ppo_max_token_len_per_gpu"),
]


@pytest.mark.parametrize(("algo", "overrides", "code", "path"), [c[1:] for c in OVERRIDE_CASES],
                         ids=[c[0] for c in OVERRIDE_CASES])
def test_broken_override_reports_code_and_path(algo, overrides, code, path):
    report = validate_source(algo=algo, overrides=overrides, verl=algo is None)
    found = [(p.code, p.path) for p in report.problems]
    assert (code, path) in found, f"expected {code} at {path!r}, got {found}"


# (file, expected code, expected config path, text the source must contain)
FILE_CASES = [
    ("syntax_error.yaml", "RLX001", "", "syntax_error.yaml:4"),
    ("top_level_list.yaml", "RLX002", "", "top_level_list.yaml:1"),
    ("duplicate_key.yaml", "RLX003", "", "duplicate_key.yaml:4"),
    ("python_tag.yaml", "RLX004", "", "python_tag.yaml:2"),
    ("alias.yaml", "RLX005", "", "alias.yaml:3"),
    ("binary.yaml", "RLX006", "", "binary.yaml"),
    ("does_not_exist.yaml", "RLX007", "", "does_not_exist.yaml"),
    ("experiment_unknown_key.yaml", "RLX008", "", "experiment_unknown_key.yaml:2"),
    ("preset_unknown_key.yaml", "RLX008", "", "preset_unknown_key.yaml:2"),
    ("experiment_bad_override.yaml", "RLX102", "actor_rollout_ref.actor.clip_ratoi", "experiment_bad_override.yaml:4"),
    # verl bash scripts, read as `rlx validate config --verl run.sh` reads them
    ("no_trainer_command.sh", "RLX010", "", "no_trainer_command.sh"),
    ("missing_config.sh", "RLX011", "", "missing_config.sh:2"),
    ("unresolved_variable.sh", "RLX012", "trainer.nnodes", "unresolved_variable.sh:13"),
]


@pytest.mark.parametrize(("name", "code", "path", "where"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_broken_file_reports_code_path_and_location(name, code, path, where):
    report = validate_source(DATA / "input" / name)
    assert [(p.code, p.path) for p in report.problems] == [(code, path)]
    assert where in report.problems[0].source
    assert not report.ok or report.problems[0].severity.value == "warning"


# Two inputs that name different algorithms: (id, validate_source arguments, code, text the source must contain).
CONFLICT_CASES = [
    ("experiment-algo-vs-preset", {"file": "experiment_dapo.yaml", "preset": "preset_ok.yaml"}, "RLX009",
     "experiment_dapo.yaml"),
    ("algo-vs-preset-file", {"file": "preset_ok.yaml", "algo": "dapo"}, "RLX009", ""),
]


@pytest.mark.parametrize(("kwargs", "code", "where"), [c[1:] for c in CONFLICT_CASES], ids=[c[0] for c in CONFLICT_CASES])
def test_conflicting_algorithm_sources_are_an_error(kwargs, code, where):
    args = {k: (str(DATA / "input" / v) if k in ("file", "preset") else v) for k, v in kwargs.items()}
    report = validate_source(**args)
    assert [p.code for p in report.errors] == [code]
    assert where in report.errors[0].source and "DAPO" in report.errors[0].message
    assert "GSPO" in report.errors[0].message and not report.ok


def test_python_tag_is_never_executed(tmp_path):
    marker = Path("/tmp/rlx-pwned")
    marker.unlink(missing_ok=True)
    validate_source(DATA / "input" / "python_tag.yaml")
    assert not marker.exists()


def _verl_file(tmp_path, extra: str = "", algo: str = "grpo", overrides=()) -> Path:
    from rlx.resolve import resolve

    path = tmp_path / ".hydra" / "config.yaml"
    path.parent.mkdir()
    path.write_text(resolve(algo, overrides=list(overrides)).to_yaml() + extra)
    return path


def test_full_verl_config_file_is_detected_and_clean(tmp_path):
    report = validate_source(_verl_file(tmp_path))
    assert report.errors == [] and report.subject.startswith("file config.yaml")


def test_verl_config_file_with_unknown_key(tmp_path):
    report = validate_source(_verl_file(tmp_path, extra="trainr:\n  total_epochs: 3\n"))
    assert [(p.code, p.path) for p in report.errors] == [("RLX102", "trainr.total_epochs")]


def test_verl_config_file_gets_inferred_algorithm_rules(tmp_path):
    report = validate_source(_verl_file(tmp_path, overrides=["actor_rollout_ref.rollout.n=2"]))
    assert ("RLX402", "actor_rollout_ref.rollout.n") in [(p.code, p.path) for p in report.errors]
    assert report.find("RLX402")[0].source.startswith("file config.yaml")


def test_verl_config_file_plus_overrides(tmp_path):
    report = validate_source(_verl_file(tmp_path), overrides=["actor_rollout_ref.actor.clip_ratoi=0.1"])
    assert [(p.code, p.path) for p in report.errors] == [("RLX102", "actor_rollout_ref.actor.clip_ratoi")]


def _args(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


# verl example scripts that use keys or values verl 0.9.1 no longer accepts (or rlx's rules refuse): real findings.
EXAMPLE_FINDINGS = {
    "cispo__run_cispo_qwen2_5_0_5b_gsm8k": ("RLX102", "actor_rollout_ref.model.torch_dtype"),
    "gmpo__test_dapo_7b_math": ("RLX107", "reward_model.reward_kwargs.overlong_buffer_cfg.len"),
    "grpo__run_gptoss_20b": ("RLX108", "actor_rollout_ref.actor.fsdp_config.model_dtype"),
    "grpo__run_mistral13b_skyworkrm_hhrlhf": ("RLX107", "reward_model.model.path"),
    "grpo__run_seed_oss_36b": ("RLX402", "actor_rollout_ref.rollout.n"),
    "gspo__test_gspo_3b_math": ("RLX107", "reward_model.reward_manager"),
    "ppo__run_deepseek7b_llm": ("RLX102", "critic.model.fsdp_config.param_offload"),
    "ppo__run_qwen2-7b_rm_legacy": ("RLX102", "reward_model.use_reward_loop"),
    # verl's own ReMax example runs the v1 trainer (its default), which never supplies reward_baselines (issue 11)
    "remax__run_qwen2.5-3b_seq_balance": ("RLX446", "trainer.use_v1"),
    "rollout_correction__run_with_rollout_corr": ("RLX401", "actor_rollout_ref.rollout.n"),
    "tuning_0.5b__qwen2-0.5b_grpo-lora_1_h100_fsdp_vllm": ("RLX401", "actor_rollout_ref.rollout.n"),
}


@pytest.mark.parametrize("name", sorted(EXAMPLE_FINDINGS))
def test_verl_example_with_stale_keys_is_broken(name):
    report = validate_source(overrides=_args(DATA / "verl_examples" / "broken" / f"{name}.args"), verl=True)
    assert EXAMPLE_FINDINGS[name] in [(p.code, p.path) for p in report.errors]


VALID_EXAMPLES = sorted(p.stem for p in (DATA / "verl_examples" / "valid").glob("*.args"))


def test_enough_valid_examples():
    assert len(VALID_EXAMPLES) >= 10
    assert sorted(p.stem for p in (DATA / "verl_examples" / "broken").glob("*.args")) == sorted(EXAMPLE_FINDINGS)


@pytest.mark.parametrize("name", VALID_EXAMPLES)
def test_verl_example_validates_without_errors(name):
    report = validate_source(overrides=_args(DATA / "verl_examples" / "valid" / f"{name}.args"), verl=True)
    assert report.errors == [], [p.to_dict() for p in report.errors]


def test_corpus_size_and_categories():
    from rlx.validate.rules import all_rules

    categories = {r.code: r.category for r in all_rules()}
    codes = [c[3] for c in OVERRIDE_CASES] + [c[1] for c in FILE_CASES] + [v[0] for v in EXAMPLE_FINDINGS.values()]
    codes += [c[2] for c in CONFLICT_CASES]
    assert len(codes) >= 40
    assert {categories[c] for c in codes} == {"input", "schema", "verl", "names", "algorithm", "resources"}


def test_every_checked_rule_is_exercised_by_the_corpus():
    from rlx.validate.rules import all_rules

    covered = {c[3] for c in OVERRIDE_CASES} | {c[1] for c in FILE_CASES} | {v[0] for v in EXAMPLE_FINDINGS.values()}
    covered |= {c[2] for c in CONFLICT_CASES}
    deep_only = {"RLX290", "RLX304"}
    untested = {r.code for r in all_rules() if r.origin == "rlx"} - covered - deep_only
    # Rules whose trigger needs Megatron or MoE settings absent from ppo_trainer's schema.
    assert untested <= {"RLX202", "RLX212"}, untested
