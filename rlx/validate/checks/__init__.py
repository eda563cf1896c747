"""Check modules, one per rule category. Importing a module registers its rules in `rlx.validate.rules.RULES`."""
