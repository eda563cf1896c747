"""Environment names shared by the launcher and the CPU rollout (importable without torch, ray or verl)."""

from __future__ import annotations

NO_SYNC_ENV = "RLX_VERL_CPU_NO_SYNC"  # negative control: the rollout keeps its initial weights
