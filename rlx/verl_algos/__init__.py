"""rlx's own algorithms inside verl's processes, one module per algorithm: each registers the verl names its spec
declares (`Algorithm.plugin_names`) and is named by the spec's `verl_module`, exactly as a third-party algorithm's
module is. `rlx.verl_plugin` imports them; `common` holds what they share. The maths are in `rlx.ops`."""
