"""A CPU rollout for verl 0.9.1: a `RolloutReplica`, the server actor verl's agent loop calls, and the `BaseRollout`
adapter in the hybrid worker that pushes the actor's weights to the server on every update.

The server samples with the tiny HF model (a forward loop with a KV cache; temperature, top-k and top-p as vLLM reads
them) and returns verl's `TokenOutput`, with the sampled tokens' log-probs when the agent loop asks for them
(`rollout.calculate_log_probs`). The adapter's `update_weights` sends every tensor of the actor's
`get_per_tensor_param()` (workers/engine_workers.py:791-806), so the rollout policy is the actor's after each update:
`training/rollout_probs_diff_max` measures it, and `RLX_VERL_CPU_NO_SYNC=1` (a negative control for tests) skips it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, cast

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from rlx.verl_cpu.rollout_env import NO_SYNC_ENV

if TYPE_CHECKING:
    from ray.actor import ActorHandle

logger = logging.getLogger("rlx.verl_cpu")
BATCH_WINDOW_S = 0.02  # requests arriving within this window are decoded together


def server_name(replica_rank: int, suffix: str = "") -> str:
    return f"rlx_cpu_server_{replica_rank}{suffix}"


def sample_rows(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row of `logits` [B, V] and its log-prob. The log-prob is that of the temperature-scaled,
    unfiltered distribution, the one verl's actor recomputes (`old_log_probs` at `rollout.temperature`), so that
    `training/rollout_probs_diff_*` compares like with like. top-k/top-p restrict only what is sampled, as in vLLM's
    default logprobs mode. temperature 0 is greedy."""
    logits = logits.float()
    if temperature <= 0:
        tokens = torch.argmax(logits, -1)
        return tokens, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]
    scaled = logits / temperature
    logp = torch.log_softmax(scaled, -1)
    filtered = scaled.clone()
    if 0 < top_k < filtered.shape[-1]:
        kth = torch.topk(filtered, top_k, dim=-1).values[:, -1:]
        filtered = filtered.masked_fill(filtered < kth, float("-inf"))
    if top_p < 1.0:
        probs_sorted, idx = torch.sort(torch.softmax(filtered, -1), descending=True, dim=-1)
        drop_sorted = probs_sorted.cumsum(-1) - probs_sorted > top_p  # keep the smallest prefix reaching top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, idx, drop_sorted)
        filtered = filtered.masked_fill(drop, float("-inf"))
    tokens = torch.multinomial(torch.softmax(filtered, -1), 1, generator=generator)[:, 0]
    return tokens, logp.gather(-1, tokens[:, None])[:, 0]


class CpuRolloutServer:
    """The rollout server: one per replica, a Ray actor that holds the tiny model and generates for the agent loop."""

    def __init__(self, model_path: str, response_length: int, seed: int = 0) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        torch.set_num_threads(1)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=torch.float32, attn_implementation="sdpa"
        ).eval()
        tok = AutoTokenizer.from_pretrained(model_path)
        eos = set()
        try:
            gen = GenerationConfig.from_pretrained(model_path)
            ids = gen.eos_token_id
            eos |= set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        except OSError:
            pass
        if tok.eos_token_id is not None:
            eos.add(int(tok.eos_token_id))
        self.eos = eos
        self.response_length = int(response_length)
        self.generator = torch.Generator().manual_seed(int(seed))  # rollout.seed, as vLLM seeds its sampler
        self.global_steps: int | None = None
        self.weight_version = 0
        self.pending: list[tuple[list[int], dict[str, Any], asyncio.Future]] = []
        self.batcher: asyncio.Task | None = None

    # -- generation ----------------------------------------------------------------------------------------------------

    async def generate(
        self,
        request_id: str = "",
        prompt_ids: list[int] | None = None,
        sampling_params: dict[str, Any] | None = None,
        image_data=None,
        video_data=None,
        **kwargs: Any,
    ) -> TokenOutput:
        """verl's token-in-token-out call (workers/rollout/llm_server.py:151). Requests that arrive together are
        generated as one batch: the agent loop sends a whole step's prompts at once."""
        params = dict(sampling_params or {})
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pending.append((list(prompt_ids or []), params, future))
        if self.batcher is None or self.batcher.done():
            self.batcher = asyncio.create_task(self._drain())
        tokens, logps = await future
        return TokenOutput(
            token_ids=tokens,
            log_probs=logps if params.get("logprobs") else None,
            stop_reason="completed",
            num_preempted=0,
            extra_fields={"global_steps": self.global_steps},
        )

    async def _drain(self) -> None:
        while self.pending:
            await asyncio.sleep(BATCH_WINDOW_S)  # let the rest of the step's requests arrive
            batch, self.pending = self.pending, []
            groups: dict[tuple, list] = {}
            for item in batch:
                groups.setdefault(self._sampling(item[1]), []).append(item)
            for key, items in groups.items():
                try:
                    results = self._generate_batch([it[0] for it in items], *key)
                except Exception as e:  # noqa: BLE001 - every waiting request gets the error
                    for it in items:
                        if not it[2].done():
                            it[2].set_exception(e)
                    continue
                for it, res in zip(items, results, strict=True):
                    if not it[2].done():
                        it[2].set_result(res)

    def _sampling(self, params: dict[str, Any]) -> tuple[int, float, int, float]:
        limit = params.get("max_tokens") or params.get("max_new_tokens") or self.response_length
        top_k = params.get("top_k")
        top_p = params.get("top_p")
        return (
            min(int(limit), self.response_length),
            float(params.get("temperature", 1.0)),
            -1 if top_k is None else int(top_k),
            1.0 if top_p is None else float(top_p),
        )

    @torch.no_grad()
    def _generate_batch(
        self, prompts: list[list[int]], limit: int, temperature: float, top_k: int, top_p: float
    ) -> list[tuple[list[int], list[float]]]:
        """Left-padded batch decoding with a KV cache; each row stops at its first EOS."""
        pad = 0
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
        out_tokens: list[list[int]] = [[] for _ in prompts]
        out_logps: list[list[float]] = [[] for _ in prompts]
        done = torch.zeros(len(prompts), dtype=torch.bool)
        past = None
        step_ids = ids
        for _ in range(limit):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -step_ids.shape[1] :]
            out = self.model(
                input_ids=step_ids, attention_mask=mask, position_ids=positions, past_key_values=past, use_cache=True
            )
            past = out.past_key_values
            tokens, logps = sample_rows(out.logits[:, -1], temperature, top_k, top_p, self.generator)
            for i in range(len(prompts)):
                if not done[i]:
                    out_tokens[i].append(int(tokens[i]))
                    out_logps[i].append(float(logps[i]))
                    if int(tokens[i]) in self.eos:
                        done[i] = True
            if bool(done.all()):
                break
            step_ids = tokens.unsqueeze(-1)
            mask = torch.cat([mask, torch.ones(len(prompts), 1, dtype=torch.long)], dim=-1)
        return list(zip(out_tokens, out_logps, strict=True))

    # -- weights -------------------------------------------------------------------------------------------------------

    def update_weights(self, state: dict[str, torch.Tensor]) -> int:
        """Load the actor's tensors (HF names); returns how many were loaded. Unknown names are an error: a silent
        partial sync would make the rollout policy differ from the actor's."""
        own = self.model.state_dict()
        unknown = [k for k in state if k not in own]
        if unknown:
            raise KeyError(f"rollout weight sync: {len(unknown)} names the rollout model lacks, e.g. {unknown[:3]}")
        with torch.no_grad():
            for name, tensor in state.items():
                own[name].copy_(tensor.to(own[name].dtype))
        self.weight_version += 1
        return len(state)

    def stats(self) -> dict[str, Any]:
        return {"weight_version": self.weight_version, "global_steps": self.global_steps}

    # -- control calls the replica and the adapters make (no memory to release on CPU) ---------------------------------

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    async def wake_up(self) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def abort_all_requests(self, reject_request: bool = False) -> None:
        return None

    async def resume_generation(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def wait_for_requests_to_drain(self) -> None:
        while self.pending or (self.batcher is not None and not self.batcher.done()):
            await asyncio.sleep(BATCH_WINDOW_S)

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


class CpuReplica(RolloutReplica):
    """One CPU rollout server per replica, started next to the hybrid workers (no GPU, no CPU reserved: it is
    a scheduling-free actor on the embedded head)."""

    async def launch_servers(self) -> None:
        mc = self.model_config  # a DictConfig here (replica.py:95), an HFModelConfig elsewhere
        path = os.path.expanduser(str((mc.get("local_path") if hasattr(mc, "get") else None) or mc.path))
        name = server_name(self.replica_rank, self.name_suffix)
        # Ray's stubs type this chain as a handle-or-class union; at runtime it is the actor's handle
        server = cast(
            "ActorHandle[CpuRolloutServer]",
            ray.remote(CpuRolloutServer)
            .options(
                name=name,
                num_cpus=0,
                max_concurrency=self.max_concurrency,
                runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
            )
            .remote(
                model_path=path,
                response_length=self.config.response_length,
                seed=int(getattr(self.config, "seed", 0) or 0) + self.replica_rank,
            ),
        )
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"rlx-cpu://{name}"
        await server.stats.remote()  # wait until the model is loaded

    def rollout_worker_use_gpu(self) -> bool:
        return False


class CpuServerAdapter(BaseRollout):
    """The hybrid worker's side: rank 0 of each replica pushes the actor's weights to its server."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1, **kwargs: Any) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        world = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self._has_server = rank % world == 0
        self._server = None
        self.sleep_level = 1

    def _handle(self):
        if self._server is None:
            self._server = ray.get_actor(server_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    async def update_weights(self, weights, wire_format: str = "named_tensors", **kwargs: Any) -> None:
        state = {}
        for name, tensor in weights:
            if hasattr(tensor, "full_tensor"):  # FSDP2 DTensor: every rank takes part in the gather
                tensor = tensor.full_tensor()
            state[name] = tensor.detach().to("cpu", copy=True)
        if not self._has_server:
            return
        if os.environ.get(NO_SYNC_ENV, "") not in ("", "0"):
            logger.warning(
                "rlx cpu rollout: weight sync disabled (%s), the rollout keeps its initial weights", NO_SYNC_ENV
            )
        else:
            await self._handle().update_weights.remote(state)
        steps = kwargs.get("global_steps")
        if steps is not None:
            await self._handle().set_global_steps.remote(steps)
