"""The registry of services the supervisor can run; adding one is one `Service(...)` entry in SERVICES.

A service is: a name (state.json key, log file name), a label (what people read), the ports it binds,
`prepare` (checks + generated files -> how to start it), `ready` (the start-up probe), and optionally
`health` (a cheaper probe for `status`), `usage` (curl lines for the summary) and `cleanup` (after stop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from serving.supervisor import gateway, keys, standin, torchserve
from serving.supervisor.layout import Layout
from serving.supervisor.processes import Launch
from serving.supervisor.readiness import ProbeResult


def _no_usage(layout: Layout, show_path: Callable[[Path], str]) -> list[str]:
    return []


@dataclass(frozen=True)
class Service:
    """One service the supervisor can start, wait for, describe and stop."""

    name: str
    label: str
    ports: Callable[[Layout], dict[str, int]]
    prepare: Callable[[Layout], Launch]
    ready: Callable[[Layout], ProbeResult]
    health: Callable[[Layout], ProbeResult] | None = None
    """Probe for `status`; defaults to `ready`."""
    usage: Callable[[Layout, Callable[[Path], str]], list[str]] = _no_usage
    cleanup: Callable[[Layout], None] | None = None
    """Called after the service stopped (e.g. delete secrets it left behind)."""
    log_skip: tuple[str, ...] = ()
    """Substrings of log lines that failure reports leave out (noise such as our own probes' access log)."""
    kind: str = "native"
    """What actually runs, recorded in state.json (the TF side says "standin")."""

    def check_health(self, layout: Layout) -> ProbeResult:
        """Run the health probe (or the readiness probe when there is none)."""
        return (self.health or self.ready)(layout)


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            name=torchserve.NAME,
            label=torchserve.LABEL,
            ports=torchserve.ports,
            prepare=torchserve.prepare,
            ready=torchserve.readiness,
            health=torchserve.health,
            usage=torchserve.usage,
            cleanup=torchserve.cleanup,
            log_skip=torchserve.LOG_NOISE,
        ),
        Service(
            name=standin.NAME,
            label=standin.LABEL,
            ports=standin.ports,
            prepare=standin.prepare,
            ready=standin.readiness,
            usage=standin.usage,
            kind=standin.KIND,
        ),
        Service(
            name=keys.NAME,
            label=keys.LABEL,
            ports=keys.ports,
            prepare=keys.prepare,
            ready=keys.readiness,
            usage=keys.usage,
        ),
        Service(
            name=gateway.NAME,
            label=gateway.LABEL,
            ports=gateway.ports,
            prepare=gateway.prepare,
            ready=gateway.readiness,
            usage=gateway.usage,
        ),
    )
}
# The gateway last: it starts beside the backends and becomes ready once they answer.
DEFAULT_SERVICES = (torchserve.NAME, keys.NAME, standin.NAME, gateway.NAME)


def resolve(names: Iterable[str], registry: Mapping[str, Service] = SERVICES) -> list[Service]:
    """Services by name, in the given order without duplicates; unknown names raise ValueError."""
    chosen: list[Service] = []
    for name in names:
        if name not in registry:
            raise ValueError(f"unknown service {name!r}; known: {', '.join(registry)}")
        if registry[name] not in chosen:
            chosen.append(registry[name])
    return chosen
