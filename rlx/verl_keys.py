"""Dotted paths into verl 0.9.1's `ppo_trainer` config that rlx reads or writes.

Named once here so that a verl rename breaks one line (and the contract tests), not twenty.
"""

from __future__ import annotations

ACTOR = "actor_rollout_ref.actor"
ROLLOUT = "actor_rollout_ref.rollout"
REF = "actor_rollout_ref.ref"

ADV_ESTIMATOR = "algorithm.adv_estimator"
NORM_ADV_BY_STD = "algorithm.norm_adv_by_std_in_grpo"
GAMMA = "algorithm.gamma"
LAM = "algorithm.lam"
USE_KL_IN_REWARD = "algorithm.use_kl_in_reward"
KL_CTRL_COEF = "algorithm.kl_ctrl.kl_coef"
FILTER_GROUPS = "algorithm.filter_groups.enable"
FILTER_METRIC = "algorithm.filter_groups.metric"
RLX_ALGO = "algorithm.rlx"  # rlx's own algorithm knobs live under here (verl's algorithm section is a DictConfig)

LOSS_MODE = f"{ACTOR}.policy_loss.loss_mode"
LOSS_AGG_MODE = f"{ACTOR}.loss_agg_mode"
LOSS_SCALE_FACTOR = f"{ACTOR}.loss_scale_factor"
CLIP_RATIO = f"{ACTOR}.clip_ratio"
CLIP_LOW = f"{ACTOR}.clip_ratio_low"
CLIP_HIGH = f"{ACTOR}.clip_ratio_high"
CLIP_C = f"{ACTOR}.clip_ratio_c"
USE_KL_LOSS = f"{ACTOR}.use_kl_loss"
KL_LOSS_COEF = f"{ACTOR}.kl_loss_coef"
KL_LOSS_TYPE = f"{ACTOR}.kl_loss_type"
ENTROPY_COEFF = f"{ACTOR}.entropy_coeff"
TAU_POS = f"{ACTOR}.tau_pos"
TAU_NEG = f"{ACTOR}.tau_neg"
PPO_EPOCHS = f"{ACTOR}.ppo_epochs"
PPO_MINI_BATCH = f"{ACTOR}.ppo_mini_batch_size"
PPO_MICRO_BATCH_PER_GPU = f"{ACTOR}.ppo_micro_batch_size_per_gpu"
USE_DYNAMIC_BSZ = f"{ACTOR}.use_dynamic_bsz"
ACTOR_LR = f"{ACTOR}.optim.lr"
CALCULATE_ENTROPY = f"{ACTOR}.calculate_entropy"
SHUFFLE = f"{ACTOR}.shuffle"

ROLLOUT_N = f"{ROLLOUT}.n"
ROLLOUT_NAME = f"{ROLLOUT}.name"
TEMPERATURE = f"{ROLLOUT}.temperature"
TOP_P = f"{ROLLOUT}.top_p"

MODEL_PATH = "actor_rollout_ref.model.path"
CRITIC_ENABLE = "critic.enable"
CRITIC_LR = "critic.optim.lr"
CRITIC_WARMUP = "trainer.critic_warmup"

TRAIN_BATCH = "data.train_batch_size"
MAX_PROMPT_LEN = "data.max_prompt_length"
MAX_RESPONSE_LEN = "data.max_response_length"
TRAIN_FILES = "data.train_files"
VAL_FILES = "data.val_files"

REWARD_MANAGER = "reward.reward_manager.name"
REWARD_KWARGS = "reward.reward_kwargs"
OVERLONG_ENABLE = "reward.reward_kwargs.overlong_buffer_cfg.enable"
OVERLONG_LEN = "reward.reward_kwargs.overlong_buffer_cfg.len"
MAX_RESP_LEN_KW = "reward.reward_kwargs.max_resp_len"

PROJECT_NAME = "trainer.project_name"
EXPERIMENT_NAME = "trainer.experiment_name"
LOGGER = "trainer.logger"
NNODES = "trainer.nnodes"
GPUS_PER_NODE = "trainer.n_gpus_per_node"
TOTAL_STEPS = "trainer.total_training_steps"
USE_V1 = "trainer.use_v1"
