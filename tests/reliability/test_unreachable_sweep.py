"""Row 38: every command that talks to Ray or MLflow, against a refused port and a server that never answers.

The command list comes from the CLI itself (`rlx.helpgolden.command_paths`): a new command that is in neither
`NETWORK` nor `OFFLINE` fails `test_row38_the_sweep_covers_every_command`, so the sweep cannot fall behind the CLI.

The run the commands look at is real: a diagnostic job on the session's Ray head, tracked in a real sqlite store. For
each case its record is pointed at the fault (the cluster address, or the tracking URI), as happens when a head is
stopped or a tracking server goes away after launch, and restored before the next case.

What is asserted for every case: no "internal error" (exit 70) and no traceback; exit 3 with an `error:` that names
the unreachable address, or, for the commands that show what they have (`runs ls`, `runs show`, `runs logs`), exit 0
with a `warning:` that names it; and the time from the first connection to the hung server until rlx exited stays
within the documented deadline (docs/reliability.md, "Deadlines").
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import rel

pytestmark = pytest.mark.timeout(900)

# Deadlines for this file's environment: rel.FAST_ENV's 5 s per Ray call and 3 s per MLflow request, and a follower
# that counts the cluster lost after 5 s of failures. A command may make several bounded calls in turn.
SWEEP_ENV = {"RLX_LOST_AFTER": "5"}
DEADLINE = 30.0

RID = "{rid}"
ADDR = "{addr}"  # the unreachable address under test
HEAD = "{head}"  # the live Ray head

# (command path, target, argv, outcomes): target "ray" points the run's cluster at the fault, "mlflow" its store.
# outcomes: "error" = exit 3 naming the address; "warn" = exit 0 with a warning naming it (the command shows what
# it has); both listed = either is right.
NETWORK: list[tuple[str, str, list[str], tuple[str, ...]]] = [
    ("train", "ray", ["train", "--algo", "grpo", "--smoke", "--task", "copy", "--detach", "--address", ADDR],
     ("error",)),
    ("train", "mlflow", ["train", "--algo", "grpo", "--smoke", "--task", "copy", "--detach", "--address", HEAD,
                         "--tracking-uri", ADDR], ("error",)),
    ("runs ls", "ray", ["runs", "ls"], ("warn",)),
    ("runs ls", "mlflow", ["runs", "ls", "--tracking-uri", ADDR], ("warn",)),
    ("runs show", "ray", ["runs", "show", RID], ("warn",)),
    ("runs show", "mlflow", ["runs", "show", RID], ("warn",)),
    ("runs logs", "ray", ["runs", "logs", RID], ("warn", "error")),
    ("runs logs", "ray", ["runs", "logs", RID, "-f"], ("error",)),
    ("runs logs", "mlflow", ["runs", "logs", RID, "-f"], ("warn",)),
    ("runs stop", "ray", ["runs", "stop", RID], ("error",)),
    ("runs stop", "mlflow", ["runs", "stop", RID], ("warn",)),
    ("runs sync", "mlflow", ["runs", "sync", RID], ("error",)),
    ("runs doctor", "mlflow", ["runs", "doctor", RID, "--tracking-uri", ADDR], ("error",)),
    ("compare runs", "mlflow", ["compare", "runs", "--tracking-uri", ADDR], ("error",)),
]
# Commands that never open a connection (static checks, presets, help, import of a script).
OFFLINE = {"algos", "algos show", "presets", "presets ls", "presets show", "presets cp", "rules", "rules explain",
           "validate", "validate config", "import", "runs", "compare", ""}


def test_row38_the_sweep_covers_every_command():
    from rlx.helpgolden import command_paths

    every = {" ".join(p) for p in command_paths()}
    swept = {name for name, *_ in NETWORK}
    assert every - swept - OFFLINE == set(), "commands neither swept nor known to be offline"
    assert (swept | OFFLINE) - every == set(), "the sweep names commands the CLI no longer has"


@pytest.fixture
def launched(rlx_env, ray_head):
    """A finished diagnostic run on the session head: its record (text, to restore) and run id."""
    r = rel.submit(rlx_env, ray_head.address, task="copy", detach=False, timeout=180)
    assert r.code == 0, r.text[-3000:]
    rid = rel.run_id_of(r)
    record = Path(rlx_env["RLX_HOME"]) / "runs" / rid / "record.json"
    return rid, record, record.read_text()


def _point(record: Path, saved: str, target: str, addr: str) -> None:
    """The run as a follower finds it after the fault: live (SUBMITTED/RUNNING), its cluster or store unreachable."""
    shutil.rmtree(record.parent)
    record.parent.mkdir(parents=True)
    data = json.loads(saved)
    data.update(state="SUBMITTED", job_status="RUNNING")
    data["address" if target == "ray" else "tracking_uri"] = addr
    record.write_text(json.dumps(data))
    if target == "mlflow":  # a call the outage left waiting, for `runs sync`
        from rlx.track import journal

        journal.Journal(record.parent / "tracking-journal-job.jsonl").append(
            journal.batch(data["run_id"], params=[("rlx/sweep", "1")]))


@pytest.mark.parametrize("fault", ["refused", "hung"])
def test_row38_every_command_maps_an_unreachable_server_to_a_clean_exit(fault, launched, rlx_env, ray_head,
                                                                         blackhole, refused_url):
    rid, record, saved = launched
    addr = blackhole.url if fault == "hung" else refused_url
    port = addr.rsplit(":", 1)[1]
    env = {**rlx_env, **rel.TESTJOB, **SWEEP_ENV}
    problems = []
    for _name, target, argv, outcomes in NETWORK:
        _point(record, saved, target, addr)
        args = [a.format(rid=rid, addr=addr, head=ray_head.address) for a in argv]
        blackhole.first_accept = None
        r = rel.rlx(*args, env=env, timeout=120, what=f"row38 {fault} {target}: {' '.join(argv[:3])}",
                    hang=blackhole if fault == "hung" else None)
        label = f"{fault} {target}: rlx {' '.join(args)}"
        print(f"\n=== {label} exit {r.code} {r.seconds:.1f}s\n--- out\n{r.out[-800:]}\n--- err\n{r.err[-1200:]}")
        said = re.search(rf"^warning:.*{port}", r.err, re.M | re.S)
        if r.code == 70 or "Traceback" in r.text or "internal error" in r.text:
            problems.append(f"{label}: internal error, exit {r.code}\n{r.err[-1500:]}")
        elif r.code == 3 and "error" in outcomes:
            if not (re.search(r"^error: ", r.err, re.M) and port in r.err and "hint:" in r.err):
                problems.append(f"{label}: exit 3 without the address and a hint\n{r.err[-1500:]}")
        elif r.code == 0 and "warn" in outcomes:
            if not (said and port in r.err):
                problems.append(f"{label}: exit 0 without a warning naming the address\n{r.err[-1500:]}")
        else:
            problems.append(f"{label}: exit {r.code}, expected {outcomes}\n{r.err[-1500:]}")
        if "HTTPConnectionPool" in r.err:  # urllib3's nested repr is not a message
            problems.append(f"{label}: the cause is not condensed\n{r.err[-1500:]}")
        if fault == "hung" and r.seconds > DEADLINE:
            problems.append(f"{label}: {r.seconds:.1f}s after the first connection, over {DEADLINE:.0f}s")
        rel.assert_no_canary(r.text, label)
    assert not problems, "\n\n".join(problems)
