"""Native key renewal: the service runs the container's own ts_keys.py loop against this run's files,
and one renewal against the real TorchServe invalidates the old key while the key file gives the new one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import requests

from contract.ports import Ports
from serving.torchserve import launch as torchserve
from serving.torchserve import renewal as keys
from supervisor.layout import REPO_ROOT, Layout
from supervisor.services import DEFAULT_SERVICES, SERVICES


def test_keys_service_renews_this_runs_key_file_with_the_generated_config(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "run", tmp_path / "artifacts", "127.0.0.1", Ports.ephemeral())
    launch = SERVICES[keys.NAME].prepare(layout)
    assert launch.argv[:3] == [sys.executable, str(REPO_ROOT / "deploy/torchserve/ts_keys.py"), "rotate"]
    assert launch.argv[3:] == [
        str(torchserve.key_file(layout)),
        str(layout.service_dir("torchserve") / "config.properties"),
    ]
    assert "TS_" in launch.drop_env_prefixes
    assert SERVICES[keys.NAME].ports(layout) == {}
    assert not keys.readiness(layout).ready  # no key file yet
    assert DEFAULT_SERVICES.index(keys.NAME) > DEFAULT_SERVICES.index(torchserve.NAME)


@pytest.mark.e2e
def test_one_renewal_replaces_the_inference_key(native_stack) -> None:
    spec = importlib.util.spec_from_file_location("ts_keys", REPO_ROOT / keys.SCRIPT)
    assert spec is not None and spec.loader is not None
    ts_keys = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ts_keys)
    work = native_stack.run_dir / "torchserve"
    ping = f"http://127.0.0.1:{native_stack.ports.ts_inference}/ping"
    old = native_stack.token()
    ts_keys.renew("inference", work / "key_file.json", work / "config.properties")
    new = native_stack.token()
    assert new != old
    assert requests.get(ping, headers={"Authorization": f"Bearer {old}"}, timeout=10).status_code == 400
    assert requests.get(ping, headers={"Authorization": f"Bearer {new}"}, timeout=10).json()["status"] == "Healthy"
