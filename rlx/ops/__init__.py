"""Pure, vectorised tensor maths for the algorithms verl 0.9.1 lacks (AEPO, ASPO, GEPO, VAPO).

Nothing here imports verl: these functions take and return plain torch tensors, so the CPU smoke engine, the verl
plugin (`rlx.verl_plugin`) and the tests share one implementation. Each module follows docs/algorithms.md:

- `rlx.ops.aepo`: entropy-weighted advantages and the stop-gradient upper clip bound (section 3.7).
- `rlx.ops.aspo`: the bounded, group-relative early-code bias (section 3.8); `rlx.ops.code_detect` finds code use.
- `rlx.ops.gepo`: the group-expectation importance weight, its denominator per prompt group (section 3.5).
- `rlx.ops.vapo`: length-adaptive GAE with a separate critic lambda and the positive-example NLL (section 3.6).

No function loops over samples in Python; the only Python loop is GAE's reverse scan over time steps.
"""
