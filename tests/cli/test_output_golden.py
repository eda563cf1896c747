"""Each command's text output on fixed inputs, against its golden file (`python -m rlx.helpgolden` rewrites them):
a change to what a user reads is a reviewed diff. The inputs and the cases are `rlx.helpgolden.OUTPUTS`."""

from __future__ import annotations

import pytest

from rlx.helpgolden import OUTPUTS, output_path, render_output


def test_the_cases_cover_good_and_bad_input_of_the_offline_commands():
    commands = {args[0] for args in OUTPUTS.values()}
    assert {"algos", "presets", "rules", "validate", "import"} <= commands
    codes = {name: render_output(args).rsplit("--- exit ", 1)[1].split()[0] for name, args in OUTPUTS.items()}
    assert {"0", "1", "2"} <= set(codes.values()), codes  # success, a failed validation and a usage error


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_output_matches_its_golden_file(name):
    path = output_path(name)
    assert path.exists(), f"no golden output {path.name}: run `python -m rlx.helpgolden`"
    assert render_output(OUTPUTS[name]) == path.read_text(encoding="utf-8"), (
        f"`rlx {' '.join(OUTPUTS[name])}` prints something else now: review it, then run `python -m rlx.helpgolden`"
    )
