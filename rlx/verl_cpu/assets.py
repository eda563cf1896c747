"""What a verl-engine smoke run needs on disk, built locally (no hub): a tiny Qwen2 checkpoint with a byte-level
tokenizer, the task's parquet files and a reward module.

The tokenizer has one token per byte (GPT-2's byte-to-unicode alphabet, no merges) plus Qwen's chat specials, so it
encodes any text: a user's own parquet files and `reward.custom_reward_function` run unchanged. verl's agent loop
picks its Continuous Token builder from `config.json`'s `model_type` (`utils/tokenizer/continuous_token_wiring.py`):
`qwen2` needs a newline that is one token and an `<|im_end|>` token (`continuous_token.py:556-560`), which this
vocabulary has. The chat template renders the messages' text only, so a 3-digit copy prompt is 4 tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Content only: the tiny model sees `123=` and answers `123<|im_end|>`; a generation prompt adds nothing.
CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
REWARD_MODULE = '''"""The rlx smoke tasks' reward, for verl's custom_reward_function (written by rlx)."""
from rlx.smoke.tasks import compute_score  # noqa: F401  (verl loads this file without registering it as a module)
'''


@dataclass(frozen=True)
class TinySpec:
    """The tiny policy: the smoke engine's calibrated shape, with a byte vocabulary."""

    layers: int = 2
    hidden: int = 64
    heads: int = 4
    intermediate: int = 256
    max_positions: int = 256


def byte_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode map, in byte order: the 256 base tokens of every byte-level BPE."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = {}, 0
    for b in range(256):
        if b in visible:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_tokenizer(path: Path) -> None:
    """A byte-level BPE tokenizer without merges (one token per byte) plus SPECIALS, saved as a Qwen2 tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(byte_alphabet())}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIALS),
        chat_template=CHAT_TEMPLATE,
    )
    tok.save_pretrained(str(path))
    cfg_path = path / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "Qwen2Tokenizer"
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg_path.write_text(json.dumps(cfg, indent=2))


def write_model(path: Path, spec: TinySpec = TinySpec(), seed: int = 0) -> Path:
    """Write a randomly initialised Qwen2 checkpoint and its tokenizer to `path` (idempotent: kept if present)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    if (path / "config.json").exists() and (path / "tokenizer_config.json").exists():
        return path
    tmp = path.with_name(path.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    write_tokenizer(tmp)
    tok = AutoTokenizer.from_pretrained(str(tmp))
    vocab = len(tok)
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=vocab,
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    Qwen2ForCausalLM(cfg).save_pretrained(str(tmp))
    tmp.rename(path)  # a half-written checkpoint never has the final name
    return path


def write_task(path: Path, task: str = "copy") -> tuple[Path, Path]:
    """The task's train and val parquet files (verl's RL dataset schema) and return their paths."""
    from rlx.smoke.tasks import get_task

    t = get_task(task)
    train = t.write_parquet(Path(path) / f"{task}-train.parquet")
    return train, train


def write_reward(path: Path) -> Path:
    """A reward file verl can load: it imports the tasks' `compute_score` from the installed package (verl executes
    the file without registering it in sys.modules, `utils/import_utils.py:183-191`, so it must not define
    dataclasses itself)."""
    from rlx.fsutil import atomic_write_text

    return atomic_write_text(Path(path) / "rlx_smoke_reward.py", REWARD_MODULE)
