"""RLX0xx: reading input files.

`rlx.yamlio`, `rlx.verlscript` and `rlx.resolve` refuse bad input with an error that names one of these codes
(`RlxError.code`); `rlx validate` reports it as that rule.
"""

from __future__ import annotations

from rlx.validate.rules import ERROR, WARNING, declare

YAML_SYNTAX = declare(
    "RLX001",
    "invalid YAML syntax",
    ERROR,
    category="input",
    explanation="The file is not valid YAML. The problem names file:line:column of the first syntax error; nothing "
    "after it can be read, so fix it and validate again.",
)
NOT_MAPPING = declare(
    "RLX002",
    "top level is not a mapping",
    ERROR,
    category="input",
    explanation="Presets, experiment files and verl configs are mappings (`key: value` lines). A list, a scalar or an "
    "empty file cannot be one.",
)
DUPLICATE_KEY = declare(
    "RLX003",
    "duplicate key",
    ERROR,
    category="input",
    explanation="YAML loaders disagree on which of two equal keys wins (PyYAML keeps the last, OmegaConf refuses). "
    "rlx refuses, so the value verl sees is never a surprise.",
)
UNSAFE_TAG = declare(
    "RLX004",
    "YAML tag refused",
    ERROR,
    category="input",
    explanation="Only plain YAML is read, with a safe loader. Tags such as `!!python/object/apply` run code under "
    "unsafe loaders (reliability.md section 4); rlx never constructs them.",
)
ALIAS = declare(
    "RLX005",
    "YAML anchor or alias refused",
    ERROR,
    category="input",
    explanation="Anchors and aliases are refused before anything is expanded: a 342-byte alias bomb makes OmegaConf "
    "abort the interpreter. Write values out in full.",
)
TOO_BIG = declare(
    "RLX006",
    "file too large, too deep or not text",
    ERROR,
    category="input",
    explanation="Config files are capped at 1 MiB, 64 levels of nesting and 200,000 nodes, and must be UTF-8 text. "
    "A 13 MB YAML takes a minute to parse; 50,000 nested brackets overflow the stack.",
)
UNREADABLE = declare(
    "RLX007",
    "file not found or unreadable",
    ERROR,
    category="input",
    explanation="The file named on the command line (or by `extends:` / `preset:`) does not exist or cannot be read.",
)
BAD_STRUCTURE = declare(
    "RLX008",
    "invalid preset or experiment file",
    ERROR,
    category="input",
    explanation="The file is valid YAML but not a valid rlx preset or experiment file: an unknown top-level key, a "
    "value of the wrong shape, an unknown preset name or an `extends:` cycle.",
)

CONFLICTING_ALGORITHMS = declare(
    "RLX009",
    "conflicting algorithm sources",
    ERROR,
    category="input",
    explanation="`--algo` or an experiment file's `algo:` names one algorithm while the preset (`--preset`, or the "
    "experiment's `preset:`) is another's. rlx would print the first and train with the second's settings (a GSPO "
    "preset under a DAPO title trains GSPO's loss), so it refuses: keep one source.",
)

NO_TRAINER_COMMAND = declare(
    "RLX010",
    "script launches no verl trainer",
    ERROR,
    category="input",
    explanation="`rlx validate config --verl run.sh` reads the script's `python -m verl.trainer.main_ppo` (or "
    "`rlx.verl_entry`) command without running it. The script has none, outside comments, so there is nothing to "
    "validate.",
)
SCRIPT_CONFIG = declare(
    "RLX011",
    "the script's --config-name does not compose",
    ERROR,
    category="input",
    explanation="The script passes `--config-path`/`--config-name`, and the config is not there (the path is relative "
    "to the script) or does not compose with Hydra. rlx validates against the config the trainer would compose, so "
    "it will not guess another.",
)
UNRESOLVED_VARIABLE = declare(
    "RLX012",
    "shell variable the script does not set",
    WARNING,
    category="input",
    explanation="A script override uses `$NAME` (or `$(command)`) and the script neither assigns NAME nor gives it a "
    "default (`${NAME:-value}`). rlx reads scripts without running them and never reads your environment, so it "
    "cannot know the value: that override is not validated and verl's default stands in for it. `rlx import` keeps "
    "it as written, for you to fill in. HOME, USER, LOGNAME and PWD, which every login shell sets and scripts use "
    "for paths, are reported as information.",
)
