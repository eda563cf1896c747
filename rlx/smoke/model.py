"""The smoke engine's tiny models: a character tokenizer, a randomly initialised Qwen2 policy and a value model.

Nothing is downloaded: the model is built in code from a `Qwen2Config` (2 layers, hidden size 64, 4 heads), which
smoke-calibration.md measured to learn the default copy task from scratch in seconds on two CPU cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
# One character per token. "#" is the "call code" marker of the `code` task; "=" ends a prompt.
CHARS = "0123456789=#"


@dataclass(frozen=True)
class CharTokenizer:
    """A one-character-per-token tokenizer over a fixed alphabet, with PAD/BOS/EOS ids 0/1/2."""

    chars: str = CHARS

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    @property
    def vocab_size(self) -> int:
        # Rounded up to 16 (the calibrated size); the spare ids are never a target and the model learns to avoid them.
        return max(16, 3 + len(self.chars))

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no BOS/EOS). Unknown characters are refused: the tasks only emit known ones."""
        try:
            return [3 + self.chars.index(c) for c in text]
        except ValueError:
            bad = next(c for c in text if c not in self.chars)
            raise ValueError(f"character {bad!r} is not in the smoke tokenizer's alphabet {self.chars!r}") from None

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids` up to the first EOS; PAD/BOS and spare ids are dropped."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if 3 <= i < 3 + len(self.chars):
                out.append(self.chars[i - 3])
        return "".join(out)


@dataclass(frozen=True)
class ModelSpec:
    """Shape of the tiny policy (the calibrated defaults)."""

    layers: int = 2
    hidden: int = 64
    heads: int = 4
    intermediate: int = 256
    tie_embeddings: bool = False  # untied output head: measured to reach 0.9 sooner on the copy task
    max_positions: int = 32


def build_policy(tokenizer: CharTokenizer, spec: ModelSpec = ModelSpec()):
    """A randomly initialised `Qwen2ForCausalLM` (the caller seeds torch first); eager attention, float32."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=tokenizer.vocab_size,
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=spec.tie_embeddings,
        use_cache=False,
        pad_token_id=tokenizer.pad_id,
        bos_token_id=tokenizer.bos_id,
        eos_token_id=tokenizer.eos_id,
        # transformers' @strict config dataclass takes PretrainedConfig kwargs at runtime, not in its signature
        attn_implementation="eager",  # type: ignore[call-arg]
    )
    return Qwen2ForCausalLM(cfg)


def build_critic(tokenizer: CharTokenizer, spec: ModelSpec = ModelSpec()):
    """A value model: its own tiny Qwen2 trunk and a linear head giving one value per position (verl's critic is a
    separate model too, so actor and critic never share gradients)."""
    import torch
    from transformers import Qwen2Config, Qwen2Model

    cfg = Qwen2Config(
        vocab_size=tokenizer.vocab_size,
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        use_cache=False,
        pad_token_id=tokenizer.pad_id,
        # transformers' @strict config dataclass takes PretrainedConfig kwargs at runtime, not in its signature
        attn_implementation="eager",  # type: ignore[call-arg]
    )

    class ValueModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = Qwen2Model(cfg)
            self.head = torch.nn.Linear(spec.hidden, 1)
            torch.nn.init.zeros_(self.head.weight)
            torch.nn.init.zeros_(self.head.bias)

        def forward(self, input_ids):
            hidden = self.trunk(input_ids=input_ids).last_hidden_state
            return self.head(hidden).squeeze(-1)  # (B, L)

    return ValueModel()


def build_discriminator(tokenizer: CharTokenizer, policy, spec: ModelSpec = ModelSpec()):
    """GAD's discriminator D: the value model's shape (trunk + scalar head, read at the last response token), with
    its trunk initialised from the student `policy` (arXiv 2511.10643: D starts from the student). The head starts
    at zero, so every score starts at 0 and d_acc at 0 (ties are not separations)."""
    disc = build_critic(tokenizer, spec)
    disc.trunk.load_state_dict(policy.model.state_dict())
    return disc
