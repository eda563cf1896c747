"""Metric histories of many runs as numeric arrays: what the bulk reads (`rlx.track.reads`) return and `rlx.compare`
summarises."""

from __future__ import annotations

from collections.abc import Sequence


class Histories:
    """Metric points of many runs as numeric arrays: sorted by (run, key, step), one point per step, each curve one
    contiguous block. Built from raw (run_id, key, step, timestamp, value) rows without a DataFrame: for 2,000,000
    points, sorting and de-duplicating integer codes with numpy is several times faster than pandas on strings.
    """

    def __init__(self, rows: Sequence[tuple] | None = None) -> None:
        import numpy as np
        import pandas as pd

        rows = rows or []
        if rows:
            cols = np.array(rows, dtype=object)
            run, self.run_ids = pd.factorize(cols[:, 0])
            key, self.keys = pd.factorize(cols[:, 1])
            step = cols[:, 2].astype(np.float64)
            ts = cols[:, 3].astype(np.float64)
            raw = cols[:, 4]
            missing = raw == None  # noqa: E711 - elementwise: NULL is how the stores return a NaN point
            value = np.where(missing, np.nan, raw).astype(np.float64) if missing.any() else raw.astype(np.float64)
        else:
            run = key = np.zeros(0, dtype=np.int64)
            step = ts = value = np.zeros(0)
            self.run_ids, self.keys = np.array([], dtype=object), np.array([], dtype=object)
        order = np.lexsort((ts, step, key, run))
        run, key, step, value = run[order], key[order], step[order], value[order]
        # The latest write of a step wins (a resumed run may log a step twice).
        keep = np.ones(len(run), dtype=bool)
        keep[:-1] = ~((run[1:] == run[:-1]) & (key[1:] == key[:-1]) & (step[1:] == step[:-1]))
        self.run, self.key, self.step, self.value = run[keep], key[keep], step[keep], value[keep]
        boundary = np.ones(len(self.run), dtype=bool)
        boundary[1:] = (self.run[1:] != self.run[:-1]) | (self.key[1:] != self.key[:-1])
        self.boundary = boundary
        self.starts = np.flatnonzero(boundary)
        self.ends = np.append(self.starts[1:], len(self.run)) if len(self.starts) else self.starts.copy()
        self._index: dict[tuple[str, str], tuple[int, int]] | None = None

    def __len__(self) -> int:
        return len(self.run)

    @property
    def empty(self) -> bool:
        return len(self.run) == 0

    def curves(self):
        """(run_id, key, start, end) for every curve."""
        for s0, s1 in zip(self.starts.tolist(), self.ends.tolist(), strict=True):
            yield str(self.run_ids[self.run[s0]]), str(self.keys[self.key[s0]]), s0, s1

    def curve(self, run_id: str, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of one curve, in step order; empty lists when the run did not log `key`."""
        if self._index is None:
            self._index = {(r, k): (s0, s1) for r, k, s0, s1 in self.curves()}
        span = self._index.get((run_id, key))
        if span is None:
            return [], []
        return self.step[span[0] : span[1]].tolist(), self.value[span[0] : span[1]].tolist()

    def last_steps(self) -> dict[str, int]:
        """The highest step each run logged (over the fetched metrics)."""
        out: dict[str, int] = {}
        for r, _, _, s1 in self.curves():
            out[r] = max(out.get(r, -1), int(self.step[s1 - 1]))
        return out
