"""Rows 1-6 of reliability.md section 6: hostile or surprising config input, through the real CLI.

Each input goes through both commands that read user files, `rlx validate config FILE` and `rlx train --dry-run -c
FILE`. Invalid input is refused with rlx's documented exit code for invalid config or input (1; the research table
proposed 2, which rlx keeps for command-line usage errors), an `error:` line naming the file:line, and no traceback.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import textwrap

import pytest
import rel

pytestmark = pytest.mark.reliability

READERS = {
    "validate": lambda f: ["validate", "config", str(f)],
    "train": lambda f: ["train", "--dry-run", "-c", str(f)],
}


def _assert_refused(reader: str, code: int, out: str, err: str, *expected: str) -> None:
    """`train` fails at the first error (`error:` on stderr); `validate` reports every problem (its report on stdout).
    Either way: exit 1, each expected phrase shown, no traceback."""
    text = out + err
    assert code == 1, text[-3000:]
    assert "Traceback" not in text and "RecursionError" not in text, text[-3000:]
    if reader == "train":
        assert err.startswith("error: "), err
    for phrase in expected:
        assert phrase.lower() in text.lower(), f"{phrase!r} not in:\n{text[-3000:]}"


def _bomb(levels: int = 9, width: int = 9) -> str:
    """The classic "billion laughs": 9 levels of 9 aliases, 342 bytes, 9**9 leaves once expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [" + ",".join(f"*{prev}" for _ in range(width)) + "]")
    return "\n".join(lines) + "\n"


# ---- row 1 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", READERS)
def test_row01_python_tag_is_refused_and_never_runs(reader, tmp_path, rlx_cli):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.yaml"
    f.write_text(f"algo: grpo\nname: !!python/object/apply:os.system ['touch {marker}']\n")
    code, out, err = rlx_cli(*READERS[reader](f))
    _assert_refused(reader, code, out, err, "invalid YAML", f"{f}:2:")
    assert not marker.exists()


# ---- row 2 ---------------------------------------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import contextlib, io, json, resource, sys, time
    from rlx.cli import main
    # Warm up: the same command on a missing file imports what the error path needs (rich, yaml, the report), so
    # the timing below is the rejection itself, not one-time imports on a loaded machine.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main([a if a != sys.argv[-1] else sys.argv[-1] + ".missing" for a in sys.argv[1:]])
    t0 = time.perf_counter()
    code = main(sys.argv[1:])
    took = time.perf_counter() - t0
    # Peak RSS of this program, not ru_maxrss: that survives exec, so it would count the forked copy of pytest.
    rss = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print("RESULT " + json.dumps({"code": code, "seconds": took, "max_rss": rss}), file=sys.stderr)
    """
)
MEMORY_CAP = 1 << 30  # 1 GiB of address space: the bomb expanded needs tens of GB, rlx itself ~300 MB


def _under_memory_cap(args: list[str]) -> tuple[dict, str]:
    p = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, timeout=60,
                       preexec_fn=rel.limit_memory(MEMORY_CAP), env={**os.environ, **rel.FAST_ENV})
    result = [line for line in p.stderr.splitlines() if line.startswith("RESULT ")]
    assert result, f"the child died (exit {p.returncode}):\n{p.stderr[-3000:]}"
    stderr = "\n".join(line for line in p.stderr.splitlines() if not line.startswith("RESULT "))
    return json.loads(result[-1][7:]), p.stdout + stderr


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", ["alias_bomb", "one_alias", "oversize_13MB"])
def test_row02_alias_bomb_and_oversize_rejected_fast_with_bounded_memory(case, reader, tmp_path):
    f = tmp_path / f"{case}.yaml"
    if case == "alias_bomb":
        f.write_text(_bomb())
        assert len(f.read_bytes()) == 342
    elif case == "one_alias":
        f.write_text("algo: grpo\nname: &n run1\ndescription: *n\n")
    else:  # 200,000 flat keys, 12.9 MB: 51 s with PyYAML's pure-Python loader
        with f.open("w") as fh:
            fh.writelines(f"key_{i:07d}: value_{i:07d}_padding_padding_padding\n" for i in range(260_000))
        assert f.stat().st_size > 12_000_000
    res, text = _under_memory_cap(READERS[reader](f))
    rel.measured(f"{case} rejected ({reader})", res["seconds"])
    _assert_refused(reader, res["code"], "", text,
                    "anchors and aliases" if case != "oversize_13MB" else "byte limit")
    assert res["seconds"] < 1.0, f"took {res['seconds']:.2f}s"
    assert res["max_rss"] < MEMORY_CAP // 2


# ---- row 3 ---------------------------------------------------------------------------------------------------------

MALFORMED = {
    "over_byte_cap": (b"a: 1\n" * 220_000, "byte limit"),
    "nested_50k": (b"[" * 50_000, "nest"),
    "binary": (bytes(range(256)) * 4, "binary"),
    "invalid_utf8": (b"algo: grpo\nname: caf\xe9\n", "UTF-8"),
    "empty": (b"", "empty"),
    "top_level_list": (b"- algo: grpo\n- name: x\n", "mapping"),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", MALFORMED)
def test_row03_malformed_files_give_one_clear_error(case, reader, tmp_path, rlx_cli):
    data, expect = MALFORMED[case]
    f = tmp_path / f"{case}.yaml"
    f.write_bytes(data)
    code, out, err = rlx_cli(*READERS[reader](f))
    _assert_refused(reader, code, out, err, expect, str(f))


# ---- row 4 ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", READERS)
def test_row04_duplicate_keys_are_refused_with_both_lines(reader, tmp_path, rlx_cli):
    f = tmp_path / "dup.yaml"
    f.write_text("algo: grpo\noverrides:\n  trainer.total_epochs: 1\n  trainer.total_epochs: 2\n")
    code, out, err = rlx_cli(*READERS[reader](f))
    _assert_refused(reader, code, out, err, "duplicate key 'trainer.total_epochs' (first at line 3)", f"{f}:4:")


YAML_11_TRAPS = {  # text -> the value verl (OmegaConf) reads
    "actor_rollout_ref.actor.optim.lr: 1e-6": 1e-6,  # PyYAML alone: the string '1e-6'
    "+algorithm.rlx.ver: 3.10": 3.1,
    "trainer.val_before_train: no": False,
    "+algorithm.rlx.flag: on": True,
    "+algorithm.rlx.octal: 010": 8,
}


def test_row04_yaml11_values_are_read_as_omegaconf_reads_them(tmp_path, rlx_cli):
    from omegaconf import OmegaConf

    from rlx.yamlio import loads

    for line, expected in YAML_11_TRAPS.items():
        ours = loads(line).data
        theirs = OmegaConf.to_container(OmegaConf.create(line))
        assert ours == theirs, (line, ours, theirs)
        assert type(ours[line.split(":")[0]]) is type(expected)
    f = tmp_path / "types.yaml"
    f.write_text("algo: grpo\noverrides:\n" + "".join(f"  {line}\n" for line in YAML_11_TRAPS))
    code, out, err = rlx_cli("train", "--dry-run", "-c", str(f), "--format", "json")
    assert code in (0, 1), err  # validation findings are allowed; the values are what this row checks
    config = json.loads(out)["config"]
    for line, expected in YAML_11_TRAPS.items():
        node = config
        for part in line.split(":")[0].lstrip("+").split("."):
            node = node[part]
        assert node == expected and type(node) is type(expected), (line, node)


# ---- row 5 ---------------------------------------------------------------------------------------------------------

INTERPOLATIONS = {
    "env_unset": ("trainer.project_name", "${oc.env:RLX_TEST_SURELY_UNSET}", "RLX_TEST_SURELY_UNSET"),
    "cycle": ("trainer.experiment_name", "${trainer.experiment_name}", "trainer.experiment_name"),
    "unknown_resolver": ("trainer.project_name", "${rlx_no_such_resolver:x}", "rlx_no_such_resolver"),
    "missing": ("trainer.project_name", "???", "trainer.project_name"),
}


@pytest.mark.parametrize("case", INTERPOLATIONS)
def test_row05_bad_interpolations_are_reported_with_the_key_path(case, tmp_path, monkeypatch, rlx_cli):
    key, value, named = INTERPOLATIONS[case]
    monkeypatch.setenv("HF_TOKEN", rel.CANARY["HF_TOKEN"])
    monkeypatch.delenv("RLX_TEST_SURELY_UNSET", raising=False)
    f = tmp_path / "interp.yaml"
    f.write_text(f"algo: grpo\noverrides:\n  {key}: '{value}'\n  +algorithm.rlx.hf: '${{oc.env:HF_TOKEN}}'\n")
    code, out, err = rlx_cli("validate", "config", str(f))
    text = out + err
    assert "Traceback" not in text
    assert key in text and named in text, text
    if case != "env_unset":  # an unset variable may be set on the driver's node: a warning is enough
        assert code == 1, text
    rel.assert_no_canary(text, "validate output")


def test_row05_env_values_are_never_materialised(tmp_path, monkeypatch, rlx_cli):
    monkeypatch.setenv("HF_TOKEN", rel.CANARY["HF_TOKEN"])
    out_yaml = tmp_path / "resolved.yaml"
    code, out, err = rlx_cli("train", "--algo", "grpo", "--dry-run", "--format", "json", "-o", str(out_yaml),
                             "+algorithm.rlx.hf=${oc.env:HF_TOKEN}")
    assert code in (0, 1), err
    assert json.loads(out)["config"]["algorithm"]["rlx"]["hf"] == "${oc.env:HF_TOKEN}"
    rel.assert_no_canary(out + err + out_yaml.read_text(), "dry-run output")


def test_security_resolution_registers_no_code_running_resolvers(tmp_path):
    """Resolving a config leaves OmegaConf's resolver table as it was: nothing that evals, runs or imports."""
    script = textwrap.dedent(
        """
        from omegaconf import OmegaConf
        before = set(OmegaConf._get_resolver.__globals__["BaseContainer"]._resolvers)
        from rlx.resolve import resolve
        r = resolve("grpo", overrides=["+algorithm.rlx.x=${oc.env:HOME}"])
        r.container(); r.to_yaml(); r.command_line()
        import rlx.cli, rlx.resolve.overrides
        after = set(OmegaConf._get_resolver.__globals__["BaseContainer"]._resolvers)
        print(sorted(after - before))
        """
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    added = eval(p.stdout.strip().splitlines()[-1])  # noqa: S307 - our own child's repr of a list of names
    assert not [n for n in added if not n.startswith("oc.")], added


# ---- row 6 ---------------------------------------------------------------------------------------------------------

INVALID_OVERRIDES = {
    "sweep": "trainer.total_epochs=1,2",
    "empty_key": "=1",
    "shell_substitution": "trainer.project_name=$(touch {marker})",
    "semicolon": "trainer.project_name=a;touch {marker}",
    "backticks": "trainer.project_name=`touch {marker}`",
    "key_with_space": "key with space=1",
    "bad_quote": "trainer.project_name='it''s'",
    "escaped_quote": "trainer.project_name=it\\'s",
    "add_existing": "+trainer.project_name=x",
    "delete_missing": "~trainer.no_such_key_here",
    "set_missing": "trainer.no_such_key_here=1",
}


@pytest.mark.parametrize("case", INVALID_OVERRIDES)
def test_row06_invalid_overrides_rejected_before_any_network_call(case, tmp_path, rlx_env, blackhole):
    marker = tmp_path / "marker"
    text = INVALID_OVERRIDES[case].format(marker=marker)
    env = {**rlx_env, "MLFLOW_TRACKING_URI": blackhole.url}
    r = rel.rlx("train", "--algo", "grpo", "--smoke", "--detach", "--address", blackhole.url, text, env=env,
                timeout=60)
    rel.assert_clean_error(r, 1)
    assert text in r.err or text.split("=")[0].strip("+~") in r.err, r.err
    assert blackhole.accepted == 0, "rlx contacted the cluster or the tracking server before rejecting the input"
    assert not marker.exists()


VALID_OVERRIDES = [  # (override as typed, path, the value the driver must receive)
    ("+algorithm.rlx.cmd='$(touch {marker})'", "algorithm.rlx.cmd", "$(touch {marker})"),
    ("trainer.project_name='a;b `id` && c'", "trainer.project_name", "a;b `id` && c"),
    ("+algorithm.rlx.note='it\\'s \"quoted\"'", "algorithm.rlx.note", "it's \"quoted\""),
    ("++trainer.default_local_dir=/tmp/x y", "trainer.default_local_dir", "/tmp/x y"),
    ("++algorithm.rlx.fresh=[1,2]", "algorithm.rlx.fresh", [1, 2]),
    ("~trainer.val_before_train", "trainer.val_before_train", "<deleted>"),
    ("actor_rollout_ref.actor.optim.lr=3e-6", "actor_rollout_ref.actor.optim.lr", 3e-6),
]


def test_row06_valid_overrides_reach_the_driver_byte_identical(tmp_path, rlx_cli):
    """The printed launch command, run through /bin/sh as Ray runs entrypoints, hands the driver the same values."""
    from rlx.resolve.overrides import parse

    marker = tmp_path / "marker"
    cases = [(o.format(marker=marker), p, v.format(marker=marker) if isinstance(v, str) else v)
             for o, p, v in VALID_OVERRIDES]
    code, out, err = rlx_cli("train", "--algo", "grpo", "--dry-run", "--format", "json", *[c[0] for c in cases])
    assert code in (0, 1), err
    command = json.loads(out)["command"]
    # A fake `python3` first on PATH records the argv the shell gives it: what verl's Hydra would parse.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "python3"
    argv_file = tmp_path / "argv.json"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(argv_file)!r}, 'w'))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    subprocess.run(["/bin/sh", "-c", command], env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"},
                   check=True, timeout=30)
    argv = json.loads(argv_file.read_text())
    assert argv == shlex.split(command)[1:]
    received = {o.path: o for o in parse([a for a in argv[2:]])}
    for text, path, value in cases:
        if value == "<deleted>":
            assert received[path].op.value == "~", text
        else:
            assert received[path].value == value, (text, received[path].value)
    assert not marker.exists()

