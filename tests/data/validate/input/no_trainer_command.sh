#!/bin/bash
# python3 -m verl.trainer.main_ppo algorithm.adv_estimator=grpo
echo "nothing launches verl here"
