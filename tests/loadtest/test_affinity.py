"""Pinning whole processes to CPUs (loadtest.affinity) and the gateway benchmark's layouts (placement.py), on real
processes with real threads."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from loadtest import affinity, pointrun
from loadtest.gatewaybench import placement

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to move threads between")

# Three idle threads and a child process with a thread of its own, all started before anything is pinned; then
# one more thread per line read, which prints its thread id.
SERVER = r"""
import subprocess, sys, threading, time
for _ in range(3):
    threading.Thread(target=time.sleep, args=(120,), daemon=True).start()
kid = subprocess.Popen(
    [sys.executable, "-c", "import threading, time; threading.Thread(target=time.sleep, args=(120,)).start(); "
     "print('up', flush=True); time.sleep(120)"],
    stdout=subprocess.PIPE, text=True,
)
kid.stdout.readline()
print("ready", flush=True)
def late():
    print(threading.get_native_id(), flush=True)
    time.sleep(120)
for _ in sys.stdin:
    threading.Thread(target=late, daemon=True).start()
"""


@pytest.fixture
def server() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield proc
    os.killpg(proc.pid, 9)
    proc.wait(10)


def _placed(pids: list[int]) -> dict[int, set[int]]:
    return {tid: os.sched_getaffinity(tid) for pid in pids for tid in affinity.threads(pid)}


def test_every_thread_of_a_running_tree_is_pinned_and_put_back(server: subprocess.Popen[str]) -> None:
    everywhere, one = set(affinity.allowed()), {affinity.allowed()[-1]}
    procs = affinity.tree(server.pid)
    pids = [p.pid for p in procs]
    assert len(pids) == 2, "the server and its child"
    before = _placed(pids)
    assert len(before) >= 6 and all(cpus == everywhere for cpus in before.values())

    pins = affinity.Pins()
    assert pins.pin(procs, one) == len(before), "every thread moved, not only each process's first"
    assert all(cpus == one for cpus in _placed(pids).values())
    assert affinity.strays(procs, one) == []
    assert len(affinity.strays(procs, everywhere - one)) == len(before), "each thread outside is named"

    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("\n")
    server.stdin.flush()
    late = int(server.stdout.readline())
    assert os.sched_getaffinity(late) == one, "a thread started after the move inherits its creator's CPUs"

    pins.restore()
    after = _placed(pids)
    assert late in after and all(cpus == everywhere for cpus in after.values()), "threads started since, too"


def test_dedicated_gives_the_proxies_the_first_cpu_and_the_rest_everything_else() -> None:
    cpus = affinity.allowed()
    p = placement.plan("dedicated")
    assert (p.layout, p.proxy_cpus, p.other_cpus, p.allowed) == ("dedicated", cpus[:1], cpus[1:], cpus)
    assert placement.plan("shared").layout == "shared"


def test_dedicated_on_one_cpu_falls_back_to_shared_and_says_so() -> None:
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(mine)})  # this thread only, for the call below
    try:
        p = placement.plan("dedicated")
    finally:
        os.sched_setaffinity(0, mine)
    assert p.layout == "shared" and "only CPU" in p.note
    p.apply()  # nothing to pin
    assert p.report() == {"layout": "shared", "allowed": [min(mine)], "generator": "normal", "note": p.note}


def test_make_bench_pins_its_generator_whole_and_says_when_it_cannot(server: subprocess.Popen[str]) -> None:
    one = [affinity.allowed()[-1]]
    assert pointrun.pin(server.pid, one)
    procs = affinity.tree(server.pid)
    assert affinity.strays(procs, one) == [] and sum(len(affinity.threads(p.pid)) for p in procs) >= 6
    assert not pointrun.pin(server.pid, [4096]), "a CPU this machine does not have"
    assert not pointrun.pin(2**22 + 7, one), "a process that is not there"
