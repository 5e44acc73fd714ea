"""The registry of services the supervisor can run; adding one is a plug-in module defining
`SERVICE = Service(...)` and one line in PLUGINS.

A service is: a name (state.json key, log file name), a label (what people read), the ports it binds,
`prepare` (checks + generated files -> how to start it), `ready` (the start-up probe), and optionally
`health` (a cheaper probe for `status`), `usage` (curl lines for the summary) and `cleanup` (after stop).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from supervisor.layout import Layout
from supervisor.processes import Launch
from supervisor.readiness import ProbeResult


def _no_usage(layout: Layout, show_path: Callable[[Path], str]) -> list[str]:
    return []


@dataclass(frozen=True)
class Service:
    """One service the supervisor can start, wait for, describe and stop."""

    name: str
    label: str
    ports: Callable[[Layout], dict[str, int]]
    prepare: Callable[..., Launch]
    """`prepare(layout, **options)`: checks and generated files -> how to start it."""
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
    options: tuple[str, ...] = ()
    """Keyword options `prepare` takes: what `Stack.up(options=...)` may set for this service."""

    def check_health(self, layout: Layout) -> ProbeResult:
        """Run the health probe (or the readiness probe when there is none)."""
        return (self.health or self.ready)(layout)


# Each service's launch plug-in lives beside what it starts and defines SERVICE; imported on first use, so the
# plug-ins may import this package's generic parts without a cycle.
PLUGINS: dict[str, str] = {
    "torchserve": "serving.torchserve.launch",
    "torchserve-keys": "serving.torchserve.renewal",
    "tfserving": "serving.tfserving.launch",
    "gateway": "gateway.launch",
}
# The gateway last: it starts beside the backends and becomes ready once they answer.
DEFAULT_SERVICES = ("torchserve", "torchserve-keys", "tfserving", "gateway")


class _Registry(Mapping[str, Service]):
    """Service name -> Service, loading each plug-in module when it is first asked for."""

    def __init__(self, plugins: Mapping[str, str]) -> None:
        self._plugins = dict(plugins)

    def __getitem__(self, name: str) -> Service:
        service = importlib.import_module(self._plugins[name]).SERVICE
        if not isinstance(service, Service) or service.name != name:
            raise TypeError(f"{self._plugins[name]}.SERVICE is not the Service named {name!r}")
        return service

    def __iter__(self) -> Iterator[str]:
        return iter(self._plugins)

    def __len__(self) -> int:
        return len(self._plugins)


SERVICES: Mapping[str, Service] = _Registry(PLUGINS)


def resolve(names: Iterable[str], registry: Mapping[str, Service] = SERVICES) -> list[Service]:
    """Services by name, in the given order without duplicates; unknown names raise ValueError."""
    chosen: list[Service] = []
    for name in names:
        if name not in registry:
            raise ValueError(f"unknown service {name!r}; known: {', '.join(registry)}")
        if registry[name] not in chosen:
            chosen.append(registry[name])
    return chosen
