"""A search's child processes end with their parent: a worker with `kbuild tune`, a trial with its
worker. Without this, a worker killed with `kill -9` left its trial training, unheard by the study,
and a killed `kbuild tune` left its workers running to the end with no one to report to.

The parent puts its pid in the child's environment (`parent_env`); the child, first thing, calls
`end_with_parent()`. On Linux the kernel then sends it SIGTERM when the parent dies
(PR_SET_PDEATHSIG); elsewhere a watchdog thread polls the parent id. SIGTERM takes the path
Ctrl-C takes: a trial checkpoints, records itself as interrupted and exits 130, and a worker
passes the signal on to its trial, marks it interrupted in the study and exits; `--resume`
re-queues it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PARENT_PID = "KBUILD_SEARCH_PARENT_PID"
_PR_SET_PDEATHSIG = 1
_POLL_S = 1.0


def parent_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child that must end with this process."""
    return {**env, PARENT_PID: str(os.getpid())}


def end_with_parent(signum: int = signal.SIGTERM) -> None:
    """Arrange for `signum` to reach this process when the parent named by `parent_env` dies; a
    process started without it (by hand, for debugging) is left alone."""
    expected = os.environ.pop(PARENT_PID, None)
    if expected is None or not expected.isdigit():
        return
    if not _kernel_parent_death_signal(signum):
        threading.Thread(target=_watch, args=(int(expected), signum), name="kbuild-parent-watch", daemon=True).start()
    if os.getppid() != int(expected):  # the parent died before the line above took effect
        os.kill(os.getpid(), signum)


def _kernel_parent_death_signal(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, signum: int) -> None:
    while os.getppid() == parent:
        time.sleep(_POLL_S)
    os.kill(os.getpid(), signum)
