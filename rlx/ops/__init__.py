"""Pure, vectorised tensor maths for the algorithms verl 0.9.1 lacks (AEPO, ASPO, GEPO, VAPO).

Nothing here imports verl: these functions take and return plain torch tensors, so the CPU smoke engine, the verl
plugin (`rlx.verl_plugin`) and the tests share one implementation. Each module follows its paper; the spec of each algorithm (declaration, rules, option defaults) is in
`rlx/algorithms/catalog.py`:

- `rlx.ops.aepo`: entropy-weighted advantages and the stop-gradient upper clip bound (arXiv 2510.14545).
- `rlx.ops.aspo`: the bounded, group-relative early-code bias (arXiv 2508.19201); `rlx.ops.code_detect` finds code use.
- `rlx.ops.gepo`: the group-expectation importance weight, its denominator per prompt group (arXiv 2508.17850).
- `rlx.ops.vapo`: length-adaptive GAE with a separate critic lambda and the positive-example NLL (arXiv 2504.05118).

No function loops over samples in Python; the only Python loop is GAE's reverse scan over time steps.
"""
