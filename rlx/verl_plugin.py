"""rlx's verl plugin: registers rlx's policy losses and advantage estimators with verl's registries.

verl imports this module (entry-point group `verl.plugins`) in every process that imports verl, Ray workers included.
"""
