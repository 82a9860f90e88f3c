"""Child processes that never outlive their parent.

Each child gets ``PR_SET_PDEATHSIG`` (Linux): the kernel sends it SIGTERM when
the process that started it dies, even by SIGKILL, so an interrupted demo or
test run leaves no broker, redis-server or worker behind. Children run in their
own session so a Ctrl-C in the terminal reaches only the parent, which then
stops them in order.
"""

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a child bound to this process's life, output going to ``log_path``."""
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> int:
    """SIGTERM, wait, then SIGKILL: return the exit code once the child is gone."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %.0fs; killing it", proc.pid, timeout)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode
