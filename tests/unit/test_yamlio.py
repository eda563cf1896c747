"""rlx.yamlio: the safe YAML reader every config file goes through (reliability.md section 4)."""

from __future__ import annotations

import pytest

from rlx.errors import ConfigError
from rlx.yamlio import MAX_BYTES, load_file, loads


def test_floats_are_read_as_omegaconf_reads_them():
    doc = loads("lr: 1e-6\nclip: 3.0e-4\nn: 8\nflag: true\nname: '1e-6'\n")
    assert doc.data == {"lr": 1e-6, "clip": 3e-4, "n": 8, "flag": True, "name": "1e-6"}
    assert isinstance(doc.data["lr"], float)


def test_duplicate_keys_are_refused_with_both_lines():
    with pytest.raises(ConfigError) as e:
        loads("a: 1\nb: 2\na: 3\n", source="x.yaml")
    assert "duplicate key 'a' (first at line 1)" in e.value.message
    assert e.value.where == "x.yaml:3:1"


def test_aliases_are_refused_before_expansion():
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
    with pytest.raises(ConfigError) as e:
        loads(bomb, source="bomb.yaml")
    assert "anchors and aliases" in e.value.message
    assert e.value.where == "bomb.yaml:2:8"  # the first `*a`


def test_python_tags_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError) as e:
        loads(f"x: !!python/object/apply:os.system ['touch {marker}']\n", source="evil.yaml")
    assert e.value.where.startswith("evil.yaml:1:")
    assert "tag" in e.value.hint
    assert not marker.exists()


def test_syntax_error_names_line_and_column():
    with pytest.raises(ConfigError) as e:
        loads("overrides:\n  a: 1\n   b: 2\n", source="p.yaml")
    assert e.value.where == "p.yaml:3:5"
    assert e.value.message.startswith("invalid YAML")


def test_deep_nesting_is_refused_without_recursion_error():
    with pytest.raises(ConfigError) as e:
        loads("[" * 50_000, source="deep.yaml")
    assert "deep" in e.value.message.lower()


def test_oversized_binary_and_non_utf8_inputs(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: 1\n" * (MAX_BYTES // 5 + 10))
    with pytest.raises(ConfigError, match="over the"):
        load_file(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x00\x01\x02")
    with pytest.raises(ConfigError, match="binary"):
        load_file(binary)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_file(latin)


@pytest.mark.parametrize("text,kind", [("", "empty"), ("- a\n- b\n", "a list"), ("42\n", "a int")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_file(f)
    assert f"it is {kind}" in e.value.message
    assert e.value.where == f"{f}:1:1"


def test_missing_file_and_directory_name_their_path(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_file(tmp_path / "nope.yaml", what="preset")
    assert e.value.message == f"preset not found: {tmp_path / 'nope.yaml'}"
    with pytest.raises(ConfigError, match="is a directory"):
        load_file(tmp_path)


def test_key_lines_and_comments_are_kept():
    doc = loads(
        "# header comment\n"
        "overrides:\n"
        "  a.b: 1   # paper section 2\n"
        "  # the reason, on the line above\n"
        "  c.d: 'x # not a comment'\n"
        "  e: 3\n",
        source="p.yaml",
    )
    assert doc.lines[("overrides", "a.b")] == 3
    assert doc.comments[("overrides", "a.b")] == "paper section 2"
    assert doc.comments[("overrides", "c.d")] == "the reason, on the line above"
    assert ("overrides", "e") not in doc.comments
    assert ("overrides",) not in doc.comments  # the file header is not a key's comment
    assert doc.where(("overrides", "e")) == "p.yaml:6"
