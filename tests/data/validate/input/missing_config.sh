#!/bin/bash
python3 -m verl.trainer.main_ppo --config-path=config --config-name=my_trainer \
    algorithm.adv_estimator=grpo
