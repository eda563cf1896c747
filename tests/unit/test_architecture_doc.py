"""docs/architecture.md against the real packages: its layer table is `LAYERS` of the import-layer test (which is
itself checked against every import), and every path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

from test_import_layers import LAYERS, _units

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "architecture.md").read_text()


def _table() -> dict[str, int]:
    block = DOC.split("<!-- layers: checked by tests/unit/test_architecture_doc.py -->", 1)[1].strip().split("\n\n")[0]
    out: dict[str, int] = {}
    for row in block.splitlines()[2:]:
        layer, packages = row.split("|")[1:3]
        for name in re.findall(r"`([a-z_]+)`", packages):
            assert name not in out, f"{name} is listed twice"
            out[name] = int(layer.split()[0])
    return out


def test_the_layer_table_is_the_one_the_import_test_enforces():
    assert _table() == LAYERS


def test_the_layer_table_names_every_package_of_rlx():
    assert _units() | {"rlx"} == set(_table())


def test_every_path_the_page_names_exists():
    paths = set(re.findall(r"`((?:rlx|presets|tests|docs)/[\w/.<>*-]+)`", DOC))
    assert paths, "the page names no path"
    for p in paths:
        if "<" in p or "*" in p:
            assert list(REPO.glob(p.replace("<name>", "*").split("<")[0] + ("" if "*" in p else "*"))), p
        else:
            assert (REPO / p).exists(), p


def test_the_spec_fields_listed_are_the_fields_of_algorithm():
    from dataclasses import fields

    from rlx.algorithms import Algorithm

    block = DOC.split("<!-- spec fields: checked by tests/unit/test_architecture_doc.py -->", 1)[1].split("\n\n")[0]
    listed = [name for line in block.splitlines() if line.startswith("- ") for name in
              re.findall(r"`([a-z_]+)`", line.split(":")[0])]
    assert sorted(listed) == sorted(f.name for f in fields(Algorithm))
