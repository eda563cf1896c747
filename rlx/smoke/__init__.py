"""The CPU smoke engine: `rlx train --algo NAME --smoke` trains a tiny model with the algorithm's real verl code.

`run(config, task=..., steps=..., seed=...)` trains a resolved verl config in-process (see `rlx.smoke.engine`);
`python -m rlx.smoke --config resolved.yaml` does the same as a Ray job entrypoint and logs into MLflow
(see `rlx.smoke.__main__`). Which config keys a smoke run shrinks is documented in `rlx.smoke.sizes`.

Importing this package is cheap: torch, verl and mlflow are imported when a run starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlx.smoke.engine import SmokeResult


def run(config: Any, **kwargs: Any) -> SmokeResult:
    """Run the smoke engine (see `rlx.smoke.engine.run`)."""
    from rlx.smoke.engine import run as _run

    return _run(config, **kwargs)


__all__ = ["run"]
