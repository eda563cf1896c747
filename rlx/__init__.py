"""rlx: the experiment layer for RL post-training on verl."""

__version__ = "0.1.0"
VERL_VERSION = "0.9.1"  # the exact verl release rlx's config paths and registries are checked against
