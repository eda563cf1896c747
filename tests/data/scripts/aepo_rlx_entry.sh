#!/usr/bin/env bash
# AEPO through rlx's verl entrypoint (the plugin algorithms run there); the launch line sits behind `ray job submit`.
set -x
WORKDIR=$(pwd)

ray job submit --address="http://127.0.0.1:8265" --no-wait -- \
  python3 -m rlx.verl_entry \
    algorithm.adv_estimator=grpo \
    actor_rollout_ref.actor.policy_loss.loss_mode=rlx_aepo \
    actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef=0.001 \
    actor_rollout_ref.actor.loss_agg_mode=token-mean \
    actor_rollout_ref.actor.clip_ratio_low=0.2 \
    actor_rollout_ref.actor.clip_ratio_high=0.28 \
    actor_rollout_ref.actor.calculate_entropy=True \
    +algorithm.rlx.aepo.alpha=0.2 \
    +algorithm.rlx.aepo.sg_scope=high_entropy \
    +algorithm.rlx.aepo.stats_scope=batch \
    data.train_files=/data/search/train.parquet \
    data.val_files=/data/search/test.parquet \
    data.train_batch_size=128 \
    data.max_prompt_length=1536 \
    data.max_response_length=4096 \
    actor_rollout_ref.model.path=Qwen/Qwen2.5-7B-Instruct \
    actor_rollout_ref.actor.ppo_mini_batch_size=32 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=8 \
    trainer.project_name=aepo \
    trainer.experiment_name=qwen2.5-7b-aepo \
    trainer.n_gpus_per_node=8 \
    trainer.nnodes=1 \
    trainer.total_epochs=2
