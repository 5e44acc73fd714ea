"""TorchServe's token auth inside its container: `ping` (the Docker healthcheck) and `rotate` (renew keys).

`ping`: GET /ping with the current inference key (token auth covers /ping too); healthy only on "Healthy".
`rotate`: TorchServe never renews a key by itself, so once `token_expiration_min` passes every client gets 401
for good. This loop asks the token API (API key, management port) for fresh inference and management keys every
half lifetime; clients re-read the key file on 401, as docs/contracts.md says.

Runs on the image's own Python with the standard library and twinserve's `contract` package (copied beside this
file in the image; on PYTHONPATH natively), whose key reader and contract ports every client shares.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from contract.ports import CONTRACT
from contract.tskeys import FILE_NAME
from contract.tskeys import read_key as _read_key

CONFIG = Path("/home/model-server/config.properties")
KEY_FILE = Path("/home/model-server/keys") / FILE_NAME
RETRY_S = 30.0


def setting(name: str, default: str, config: Path = CONFIG) -> str:
    """A TorchServe setting as TorchServe resolves it: TS_<NAME> (enable_envvars_config=true), the file, default."""
    env = os.environ.get("TS_" + name.upper())
    if env:
        return env
    if config.is_file():
        for raw in config.read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith(("#", "!")) and "=" in line:
                key, value = line.split("=", 1)
                if key.strip() == name:
                    return value.strip()
    return default


def local_url(address: str, path: str) -> str:
    """`http://0.0.0.0:<port>` -> `http://127.0.0.1:<port><path>` (a wildcard bind is reached through loopback)."""
    return address.rstrip("/").replace("://0.0.0.0", "://127.0.0.1") + path


def read_key(kind: str, key_file: Path = KEY_FILE) -> str:
    """The current `kind` key ("inference", "management" or "API")."""
    return _read_key(key_file, kind)


def get(url: str, key: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET with a Bearer key; (status, body), HTTP errors included."""
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + key})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def ping(key_file: Path = KEY_FILE, config: Path = CONFIG) -> int:
    """0 when /ping answers 200 {"status": "Healthy"}, else 1 with the reason on stdout."""
    try:
        key = read_key("inference", key_file)
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"no inference key in {key_file} yet: {err!r}")
        return 1
    url = local_url(setting("inference_address", f"http://127.0.0.1:{CONTRACT.ts_inference}", config), "/ping")
    try:
        status, body = get(url, key)
    except OSError as err:
        print(f"GET {url} failed: {err!r}")
        return 1
    try:
        healthy = status == 200 and json.loads(body).get("status") == "Healthy"
    except ValueError:
        healthy = False
    print(f"GET {url}: {status} {body[:200]!r}")
    return 0 if healthy else 1


def renew(kind: str, key_file: Path = KEY_FILE, config: Path = CONFIG) -> None:
    """Ask TorchServe for a new `kind` key; it rewrites the key file. Raises OSError/ValueError on failure."""
    address = setting("management_address", f"http://127.0.0.1:{CONTRACT.ts_management}", config)
    url = local_url(address, f"/token?type={kind}")
    status, body = get(url, read_key("API", key_file))
    if status != 200:
        raise ValueError(f"token API answered {status}: {body[:200]!r}")


def rotate(key_file: Path = KEY_FILE, config: Path = CONFIG) -> None:
    """Renew the inference and management keys every half lifetime, forever (retry soon after a failure)."""
    period = max(60.0, float(setting("token_expiration_min", "60", config)) * 60.0 / 2.0)
    due = time.monotonic() + period
    while True:
        time.sleep(max(0.0, due - time.monotonic()))
        try:
            for kind in ("inference", "management"):
                renew(kind, key_file, config)
        except (OSError, ValueError, KeyError, TypeError) as err:
            print(f"ts_keys: key renewal failed, retrying in {RETRY_S:.0f} s: {err!r}", file=sys.stderr, flush=True)
            due = time.monotonic() + RETRY_S
            continue
        print("ts_keys: inference and management keys renewed", file=sys.stderr, flush=True)
        due = time.monotonic() + period


def main(argv: list[str]) -> int:
    """`ts_keys.py ping|rotate [KEY_FILE [CONFIG]]`."""
    if not argv or argv[0] not in ("ping", "rotate"):
        print("usage: ts_keys.py ping|rotate [KEY_FILE [CONFIG]]", file=sys.stderr)
        return 2
    key_file = Path(argv[1]) if len(argv) > 1 else KEY_FILE
    config = Path(argv[2]) if len(argv) > 2 else CONFIG
    if argv[0] == "ping":
        return ping(key_file, config)
    rotate(key_file, config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
