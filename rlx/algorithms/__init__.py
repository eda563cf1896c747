"""Algorithm registry. `ALGORITHMS` is the one place algorithm names live."""

from __future__ import annotations

from rlx.algorithms.catalog import REGISTRY as ALGORITHMS
from rlx.algorithms.registry import Algorithm, Constraint, Family, Severity, Status

__all__ = ["ALGORITHMS", "Algorithm", "Constraint", "Family", "Severity", "Status"]
