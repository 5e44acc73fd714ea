"""Which CPUs a process runs on, thread by thread: pin whole processes (every thread, every descendant) to a set of
CPUs, check that nothing strayed, and put everything back as it was.

`os.sched_setaffinity(pid)` moves one thread (the one whose id is `pid`); threads already running keep their CPUs,
and only threads created later inherit from their creator. A server that is already up (grpc's pollers, Envoy's
workers, the JVM's) must therefore be pinned thread by thread, which is what `Pins` does (Linux: /proc/<pid>/task).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

import psutil


def allowed() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0))


def threads(pid: int) -> list[int]:
    """Thread ids of process `pid` (empty when it is gone)."""
    try:
        return [int(t) for t in os.listdir(Path("/proc") / str(pid) / "task")]
    except OSError:
        return []


def tree(pid: int) -> list[psutil.Process]:
    """Process `pid` and its descendants (empty when it is gone)."""
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class Pins:
    """Threads moved to other CPUs, each with the CPUs it had before: `restore` puts them back."""

    def __init__(self) -> None:
        self.before: dict[int, set[int]] = {}
        """CPUs of each thread moved, by thread id."""
        self.processes: dict[int, set[int]] = {}
        """CPUs of each process's first thread, by pid: what threads started after the move get back."""

    def pin(self, procs: Iterable[psutil.Process], cpus: Iterable[int]) -> int:
        """Pin every thread of `procs` to `cpus`; returns how many threads moved.

        Two passes: a thread started while the first pass ran may have inherited its creator's old CPUs.
        """
        want, moved = set(cpus), 0
        procs = list(procs)
        for _ in range(2):
            for proc in procs:
                for tid in threads(proc.pid):
                    try:
                        before = os.sched_getaffinity(tid)
                        if before != want:
                            os.sched_setaffinity(tid, want)
                            moved += tid not in self.before
                    except OSError:  # the thread ended meanwhile, or it is not ours to move
                        continue
                    self.before.setdefault(tid, before)
                    self.processes.setdefault(proc.pid, self.before[tid])
        return moved

    def restore(self) -> None:
        """Give every thread of the processes pinned the CPUs it had (one started since: its process's); threads
        and processes that ended are skipped."""
        for pid, cpus in self.processes.items():
            for tid in threads(pid):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(tid, self.before.get(tid, cpus))
        self.before.clear()
        self.processes.clear()


def strays(procs: Iterable[psutil.Process], cpus: Iterable[int]) -> list[str]:
    """Threads of `procs` allowed on any CPU outside `cpus`, as 'name pid/tid: [cpus]' (empty: all placed)."""
    want, out = set(cpus), []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            name = proc.name()
            for tid in threads(proc.pid):
                with contextlib.suppress(OSError):
                    if not (have := os.sched_getaffinity(tid)) <= want:
                        out.append(f"{name} {proc.pid}/{tid}: {sorted(have)}")
    return out
