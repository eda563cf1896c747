"""rlx's static validator against the installed verl itself (imports verl: ~5 s once per session).

1. Names: the estimator and loss names rlx reads from verl's source with `ast` equal verl's real registries after
   `import verl` (minus the names rlx's own plugin registers).
2. verl's `validate_config`: on the whole corpus (built-in presets, every broken case, the verl example scripts),
   verl's real function raises exactly when rlx reports one of its RLX2xx rules (or a type error in a key that
   verl's arithmetic or dataclass conversion reads). The critic check loads the critic model, so every config gets
   a tiny local model path (built here, no download).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from rlx.presets import builtin_names
from rlx.validate import validate_source

TESTS = Path(__file__).resolve().parents[1]
DATA = TESTS / "data" / "validate"


def _corpus():
    spec = importlib.util.spec_from_file_location("validate_corpus", TESTS / "unit" / "test_validate_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORPUS = _corpus()


def _args(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _cases() -> list[tuple[str, str | None, list[str]]]:
    cases = [(f"preset-{n}", n, []) for n in builtin_names()]
    cases += [(c[0], c[1], c[2]) for c in CORPUS.OVERRIDE_CASES]
    for kind in ("valid", "broken"):
        cases += [(f"{kind}-{p.stem}", None, _args(p)) for p in sorted((DATA / "verl_examples" / kind).glob("*.args"))]
    return cases


CASES = _cases()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 1-layer Qwen2 config and a word-level tokenizer: enough for verl's HFModelConfig to load."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-model")
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>", *"abcdefghij"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                            unk_token="<unk>").save_pretrained(path)
    (path / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": len(vocab),
        "max_position_embeddings": 64, "eos_token_id": 1, "pad_token_id": 0}))
    return path


def test_static_names_equal_verl_registries_after_import():
    import verl  # noqa: F401 - loads the verl.plugins entry points, as a real job does
    from verl.trainer.ppo import core_algos

    from rlx.validate.verl_names import parse_registries, rlx_plugin_names

    static = parse_registries(Path(core_algos.__file__).read_text(encoding="utf-8"))
    plugin = rlx_plugin_names()
    assert set(static["adv_estimator"]) == set(core_algos.ADV_ESTIMATOR_REGISTRY) - set(plugin["adv_estimator"])
    assert set(static["policy_loss"]) == set(core_algos.POLICY_LOSS_REGISTRY) - set(plugin["policy_loss"])


def test_static_rollout_names_match_verl():
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY

    from rlx.validate.verl_names import ROLLOUT_NAMES

    assert {name for name, _mode in _ROLLOUT_REGISTRY} == set(ROLLOUT_NAMES)


# Keys verl's validate_config reads in arithmetic, or converts through the actor/critic dataclasses: a wrong type
# there makes verl raise too.
VERL_READS = ("actor_rollout_ref.rollout.n", "data.train_batch_size", "trainer.n_gpus",
              "trainer.nnodes")


def _rlx_expects_verl_to_fail(report) -> bool:
    for p in report.errors:
        if p.code.startswith("RLX2") or p.code == "RLX501":  # verl divides by the GPU count: 0 crashes
            return True
        if p.code == "RLX103" and p.path.startswith(VERL_READS):
            return True
        if p.code == "RLX112" and p.path.startswith("actor_rollout_ref.actor."):  # the actor dataclass refuses it
            return True
    return False


@pytest.mark.parametrize(("algo", "overrides"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rlx_agrees_with_verl_validate_config(algo, overrides, tiny_model):
    from rlx.validate import resolve_collecting, validate
    from rlx.validate.deep import run_verl_validate_config

    resolved, pre = resolve_collecting(algo, overrides=[*overrides, f"critic.model.path={tiny_model}"],
                                       verl_only=algo is None)
    raised = run_verl_validate_config(resolved.config)
    if raised and "vllm version None" in raised:
        # verl imports vLLM to map a LoRA rank; vLLM is a CUDA build and is not installed on CPU machines.
        pytest.skip("verl's LoRA check needs vllm installed; rlx's RLX215 reimplements its fallback table")
    report = validate(resolved, pre=pre)
    expected = _rlx_expects_verl_to_fail(report)
    assert (raised is not None) == expected, f"verl: {raised}; rlx: {[p.to_dict() for p in report.errors]}"


def test_deep_mode_runs_verl_itself(tiny_model):
    report = validate_source(algo="gspo", deep=True)
    assert report.problems == []
    report = validate_source(algo="ppo", overrides=[f"critic.model.path={tiny_model}", "data.train_batch_size=16",
                                                    "critic.ppo_mini_batch_size=32",
                                                    "actor_rollout_ref.actor.ppo_mini_batch_size=16"], deep=True)
    assert [(p.code, p.path) for p in report.errors] == [("RLX205", "critic.ppo_mini_batch_size")]  # no RLX290 echo
