"""Writing `<run-dir>/state.json`, the supervisor's record of what it started (the only thing `down` trusts).

Its format and its reader are the contract's (`contract.state`), shared with everyone who reads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from contract import state as contract_state
from contract.state import ProcessRecord, ServiceState, StackState
from supervisor.errors import SupervisorError

__all__ = ["ProcessRecord", "ServiceState", "StackState", "load", "locked", "remove", "save"]


def load(path: Path) -> StackState | None:
    """The state in `path`, or None if there is none; a corrupt file raises SupervisorError."""
    try:
        return contract_state.load(path)
    except contract_state.StateFileError as err:
        raise SupervisorError(str(err)) from err


def save(path: Path, state: StackState) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)


def remove(path: Path) -> None:
    """Delete the state file if present."""
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold `<run-dir>/.lock` for the duration, so two `up`/`down` never interleave on one run dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SupervisorError(
                f"another supervisor command is working on {run_dir}; try again when it ends"
            ) from None
        yield
