"""The embedded head's reaper: when the rlx process that owns a local Ray head dies, even by SIGKILL, nothing of the
head's process tree outlives it by more than a few seconds.

`LocalHead.stop` cleans up when rlx ends normally or by a signal it can catch. A SIGKILL leaves only the kernel's
`PR_SET_PDEATHSIG`, which sends `ray start --block` a SIGTERM; Ray's processes then notice one by one that their
parent or their raylet is gone, which took 33 s for a verl-engine run's ~20 processes (reliability.md row 39). This
process, started with the head in a session of its own, samples the head's tree every second while its owner lives.
When the owner is gone (its parent PID changes), it gives the tree `GRACE` seconds to exit on its own, then SIGKILLs
every remembered process that is still the one it saw (same PID and start time), and removes the head's folder. It
exits by itself when the head ends while its owner lives: `LocalHead.stop` has it in hand.

Run as a script (`python reaper.py OWNER_PID HEAD_PID HEAD_DIR`), not as `-m rlx.launch.reaper`: importing the rlx
package would cost a second of start-up for nothing. Standard library and psutil only.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

GRACE = 3.0  # seconds the tree gets to exit after its owner died, before SIGKILL
POLL = 0.2
SAMPLE_EVERY = 1.0


def main(owner: int, head: int, head_dir: str) -> int:
    import psutil

    for sig in (signal.SIGINT, signal.SIGHUP):  # a Ctrl-C in rlx's terminal is for rlx, which then stops the head
        signal.signal(sig, signal.SIG_IGN)
    seen: dict[int, float] = {}  # pid -> create_time: a reused PID is never killed

    def sample() -> bool:
        try:
            root = psutil.Process(head)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return False
        for p in procs:
            try:
                seen.setdefault(p.pid, p.create_time())
            except psutil.Error:
                pass
        return True

    def alive() -> list:
        out = []
        for pid, created in seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.Error:
                pass
        return out

    last = 0.0
    while os.getppid() == owner:
        if time.monotonic() - last >= SAMPLE_EVERY:
            if not sample():
                return 0  # the head ended while its owner lives: LocalHead.stop sees to the rest
            last = time.monotonic()
        time.sleep(POLL)
    deadline = time.monotonic() + GRACE
    while alive() and time.monotonic() < deadline:
        time.sleep(POLL)
    for p in alive():
        try:
            p.kill()
        except psutil.Error:
            pass
    deadline = time.monotonic() + 5
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not os.environ.get("RLX_KEEP_HEAD_DIR"):
        shutil.rmtree(head_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
