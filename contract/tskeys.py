"""TorchServe's key file, the one reader every client uses (docs/contracts.md, "Keys").

TorchServe 0.12 writes `key_file.json` into its working directory at start:
`{"management": {"key", "expiration time"}, "inference": {...}, "API": {"key"}}`. Inference and management keys
expire and are renewed by the token API, which rewrites the file; a client that cached a key must notice.
`KeyFile` caches the parsed file and re-reads it whenever the file changed on disk (its stat differs) or the
server refused the key it sent (`rejected` for REST, `grpc_rejected` for gRPC).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE_NAME = "key_file.json"
KINDS = ("inference", "management", "API")

# TorchServe 0.12 answers a wrong, expired or missing key over gRPC with PERMISSION_DENIED ("Token Authorization
# failed ..."); UNAUTHENTICATED is kept in case a later release answers with the code meant for it.
STALE_KEY_GRPC_CODES = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED"})


class KeyFileError(ValueError):
    """The key file is missing, unreadable, or lacks the key asked for."""


def key_file_in(run_dir: Path) -> Path:
    """Where a stack's TorchServe keys are, seen from the host: `<run_dir>/torchserve/key_file.json`
    (natively TorchServe's working directory; in compose a copy refreshed from the container)."""
    return run_dir / "torchserve" / FILE_NAME


def gateway_api_key_in(run_dir: Path) -> Path:
    """The gateway's ingress API key that `make up` writes when the gateway listens beyond loopback."""
    return run_dir / "gateway" / "api_key"


def read_key(path: Path, kind: str = "inference") -> str:
    """The current `kind` key, read anew from `path` (KeyFileError naming the file and the kind if absent)."""
    return _key(_load(path), path, kind)


def rejected(status: int, body: bytes) -> bool:
    """Whether a REST answer is TorchServe refusing the key: 401, or 0.12's `400 {"type": "InvalidKeyException"}`."""
    return status == 401 or (status == 400 and b"InvalidKeyException" in body)


def grpc_rejected(code: Any) -> bool:
    """Whether a gRPC status code (a `grpc.StatusCode`) is TorchServe refusing the key."""
    return getattr(code, "name", None) in STALE_KEY_GRPC_CODES


class KeyFile:
    """A cached view of one key file that notices renewals: cheap to ask on every request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._doc: dict[str, Any] = {}

    def key(self, kind: str = "inference", reload: bool = False) -> str:
        """The `kind` key; the file is re-read when `reload` (the server refused the last one) or it changed."""
        stamp = _stamp(self.path)
        if reload or stamp != self._stamp or kind not in self._doc:
            self._doc, self._stamp = _load(self.path), stamp
        return _key(self._doc, self.path, kind)

    def bearer(self, kind: str = "inference", reload: bool = False) -> str:
        """`Bearer <key>` for an Authorization header or gRPC metadata."""
        return "Bearer " + self.key(kind, reload)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyFileError(f"TorchServe key file {path} does not exist (is TorchServe up?)") from None
    except (OSError, ValueError) as err:
        raise KeyFileError(f"TorchServe key file {path} is unreadable: {type(err).__name__}") from None
    if not isinstance(doc, dict):
        raise KeyFileError(f"TorchServe key file {path} is not a JSON object")
    return doc


def _key(doc: dict[str, Any], path: Path, kind: str) -> str:
    try:
        return str(doc[kind]["key"])
    except (KeyError, TypeError):
        raise KeyFileError(f"TorchServe key file {path} has no {kind!r} key") from None
