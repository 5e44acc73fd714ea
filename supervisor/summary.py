"""What the CLI prints: the one-screen summary after `up` and the `status` table (never a token)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from supervisor.layout import Layout
from supervisor.services import Service
from supervisor.stack import ServiceStatus
from supervisor.state import StackState


def show_path(path: Path) -> str:
    """`path` relative to the current directory when below it (shorter curl lines), else absolute."""
    try:
        return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def _ports(ports: Mapping[str, int]) -> str:
    return ", ".join(f"{role} {port}" for role, port in ports.items())


def print_up(console: Console, current: StackState, layout: Layout, registry: Mapping[str, Service]) -> None:
    """Per service: pid, ports, log, then curl commands that work as printed (one screen, no wrapping)."""

    def line(text: str = "") -> None:
        # Plain text, never wrapped: paths and curl commands are meant to be pasted into a shell.
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    console.print(f"[bold]twinserve native stack[/bold] in {show_path(layout.run_dir)}", highlight=False)
    for name, entry in current.services.items():
        svc = registry.get(name)
        console.print(f"[bold green]{entry.label}[/bold green]", highlight=False)
        line(f"  pid {entry.process.pid}, log {show_path(Path(entry.log))}")
        line(f"  ports: {_ports(entry.ports)}")
        for command in svc.usage(layout, show_path) if svc else []:
            line(f"  {command}")
    line(f"Stop with: make down  (or: python -m supervisor down --run-dir {show_path(layout.run_dir)})")


def print_status(console: Console, statuses: list[ServiceStatus]) -> None:
    """One row per recorded service: state, pid, ports, health."""
    table = Table(title="twinserve native stack", title_justify="left")
    for column in ("service", "state", "pid", "ports", "health"):
        table.add_column(column)
    for s in statuses:
        if not s.running:
            state, health = Text("not running", "red"), f"see {show_path(Path(s.log))}"
        elif s.health is None:
            state, health = Text("running"), "unknown service, not probed"
        else:
            state = Text("healthy", "green") if s.health.ready else Text("unhealthy", "yellow")
            health = s.health.detail
        # Text, not markup: probe details quote server replies, which may contain brackets.
        table.add_row(Text(s.label), state, str(s.pid), _ports(s.ports), Text(health))
    console.print(table)
