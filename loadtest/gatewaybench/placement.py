"""Where the gateway benchmark's processes run (`--cpus`).

- `dedicated` (the default where there are two CPUs or more): the proxies under test (the gateway, its variants,
  Envoy) get the first CPU this process may use, and everything else gets the others: the load generator (this
  process), the upstreams (TorchServe, the TF side, the no-op upstream) and the rest of the stack. This is how a
  proxy is deployed (its own cores) and how a load test keeps its generator off the system under test; every proxy
  gets the same core, so the comparison stays side by side. On a shared 2-vCPU VM it also keeps a proxy's answer
  from waiting behind the generator or the upstream on the same core, which is noise, not the proxy's cost.
- `shared`: nothing is pinned; every process may run on every CPU (the benchmark before `--cpus`).

The stack's processes outlive the benchmark: their CPUs are put back when it ends. bench.json records the layout,
what was pinned, and any thread found outside its CPUs at the end (`strays`: none when the layout held).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import psutil

from loadtest import affinity
from loadtest.pointrun import prioritise

LAYOUTS = ("dedicated", "shared")


@dataclass
class Placement:
    """The layout chosen, the CPUs of each side, and the processes pinned to them (by name)."""

    layout: str
    allowed: list[int] = field(default_factory=affinity.allowed)
    """The CPUs this process could use before anything was pinned."""
    proxy_cpus: list[int] = field(default_factory=list)
    other_cpus: list[int] = field(default_factory=list)
    proxies: dict[str, list[psutil.Process]] = field(default_factory=dict)
    others: dict[str, list[psutil.Process]] = field(default_factory=dict)
    moved: int = 0
    generator: str = "normal"
    """How the generator's event loop is scheduled: nice -5 beside the upstreams in `dedicated`."""
    note: str = ""
    nice_before: int | None = None
    pins: affinity.Pins = field(default_factory=affinity.Pins)

    def apply(self) -> None:
        """Pin both sides (the others first: nothing of theirs should start on the proxies' CPU meanwhile)."""
        if self.layout != "dedicated":
            return
        for procs in self.others.values():
            self.moved += self.pins.pin(procs, self.other_cpus)
        for procs in self.proxies.values():
            self.moved += self.pins.pin(procs, self.proxy_cpus)
        # Its CPU now also runs TorchServe and the TF side: weighted above them, its sends leave on time.
        self.nice_before = os.getpriority(os.PRIO_PROCESS, 0)
        self.generator = prioritise(os.getpid(), "nice")

    def restore(self) -> None:
        """Every moved thread back on the CPUs it had, and the generator's priority as it was."""
        self.pins.restore()
        if self.nice_before is not None:
            os.setpriority(os.PRIO_PROCESS, 0, self.nice_before)
            self.nice_before = None

    def report(self) -> dict[str, Any]:
        """bench.json's `cpus`: the layout, each side's CPUs and processes, and threads outside their CPUs now."""
        out: dict[str, Any] = {"layout": self.layout, "allowed": self.allowed, "generator": self.generator}
        if self.note:
            out["note"] = self.note
        if self.layout == "dedicated":
            strays = [s for procs in self.proxies.values() for s in affinity.strays(procs, self.proxy_cpus)]
            strays += [s for procs in self.others.values() for s in affinity.strays(procs, self.other_cpus)]
            out |= {
                "proxy_cpus": self.proxy_cpus,
                "other_cpus": self.other_cpus,
                "proxies": sorted(self.proxies),
                "others": sorted(self.others),
                "threads_moved": self.moved,
                "strays": strays,
            }
        return out


def plan(layout: str) -> Placement:
    """The CPUs of each side for `layout`; `dedicated` on one CPU falls back to `shared`, saying so."""
    cpus = affinity.allowed()
    if layout == "dedicated" and len(cpus) < 2:
        return Placement("shared", cpus, note=f"dedicated asked, but only CPU {cpus[0]} is allowed")
    if layout == "dedicated":
        return Placement(layout, cpus, proxy_cpus=cpus[:1], other_cpus=cpus[1:])
    return Placement(layout, cpus)
