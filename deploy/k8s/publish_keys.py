"""Sidecar beside TorchServe on Kubernetes: copy key_file.json into a Secret each time TorchServe rewrites it.

TorchServe makes its keys itself at start and the rotation loop (deploy/torchserve/ts_keys.py) renews them, so no
key can be written into a manifest. Clients in other pods (the gateway, Locust workers) mount the Secret and
re-read the file on a 401, as they do with compose's shared volume. Runs on the TorchServe image's own Python
with the standard library only; the pod's ServiceAccount may get and patch this one Secret and nothing else.

Environment: KEY_FILE, SECRET_NAME, POD_NAMESPACE; optional POLL_S (default 2) and ACCOUNT_DIR (the folder with
the ServiceAccount `token` and the cluster `ca.crt`; default the standard automount path).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

API = "https://kubernetes.default.svc"
ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SECRET_KEY = "key_file.json"
"""The file name inside the Secret: mounted as a folder, clients see <mount>/key_file.json."""


def patch_body(key_file: bytes) -> bytes:
    """The merge patch that sets the Secret's key_file.json; refuses anything that is not TorchServe's key file."""
    keys = json.loads(key_file)
    if not isinstance(keys, dict) or "inference" not in keys or "key" not in keys["inference"]:
        raise ValueError("not a TorchServe key file (no inference key)")
    return json.dumps({"data": {SECRET_KEY: base64.b64encode(key_file).decode("ascii")}}).encode()


def secret_url(namespace: str, name: str, api: str = API) -> str:
    """The core API URL of one Secret."""
    return f"{api}/api/v1/namespaces/{namespace}/secrets/{name}"


def publish(url: str, body: bytes, token: str, context: ssl.SSLContext | None) -> None:
    """PATCH the Secret (merge patch); raises OSError or urllib.error.HTTPError on failure."""
    request = urllib.request.Request(
        url,
        data=body,
        method="PATCH",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/merge-patch+json"},
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as reply:
        reply.read()


def run(key_file: Path, url: str, poll_s: float, account: Path = ACCOUNT) -> None:
    """Publish whenever the key file's content changes; retry a failed publish on the next poll."""
    context = ssl.create_default_context(cafile=str(account / "ca.crt"))
    published = b""
    while True:
        try:
            current = key_file.read_bytes()
        except OSError:
            current = b""  # TorchServe has not written it yet
        if current and current != published:
            try:
                # The token is re-read each time: the kubelet rotates projected ServiceAccount tokens.
                publish(url, patch_body(current), (account / "token").read_text().strip(), context)
                published = current
                print("publish_keys: key file published to the Secret", file=sys.stderr, flush=True)
            except (OSError, ValueError) as err:
                print(f"publish_keys: publish failed, retrying: {err!r}", file=sys.stderr, flush=True)
        time.sleep(poll_s)


def main() -> int:
    """Read the environment and run forever."""
    url = secret_url(os.environ["POD_NAMESPACE"], os.environ["SECRET_NAME"])
    account = Path(os.environ.get("ACCOUNT_DIR", str(ACCOUNT)))
    run(Path(os.environ["KEY_FILE"]), url, float(os.environ.get("POLL_S", "2")), account)
    return 0


if __name__ == "__main__":
    sys.exit(main())
