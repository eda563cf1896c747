#!/usr/bin/env bash
# SAPO: soft gate on the token ratio; asymmetric temperatures.
set -euxo pipefail

TAU_POS=${TAU_POS:-1.0}
TAU_NEG=${TAU_NEG:-1.05}
PROJECT=${PROJECT:=sapo}

python3 -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    actor_rollout_ref.actor.policy_loss.loss_mode=sapo \
    actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean \
    actor_rollout_ref.actor.tau_pos=${TAU_POS} \
    actor_rollout_ref.actor.tau_neg=${TAU_NEG} \
    actor_rollout_ref.actor.use_kl_loss=False \
    data.train_files=$HOME/data/dapo-math-17k.parquet \
    data.val_files=$HOME/data/aime-2024.parquet \
    data.train_batch_size=256 \
    data.max_prompt_length=2048 \
    data.max_response_length=8192 \
    actor_rollout_ref.model.path=Qwen/Qwen3-8B \
    actor_rollout_ref.actor.ppo_mini_batch_size=64 \
    actor_rollout_ref.actor.use_dynamic_bsz=True \
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu=20480 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=16 \
    trainer.project_name=$PROJECT \
    trainer.experiment_name=qwen3-8b-sapo \
    trainer.n_gpus_per_node=8 \
    trainer.nnodes=2 \
    trainer.total_epochs=10 "$@"
