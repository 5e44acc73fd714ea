"""A port already taken is a start-up error, never a silently shared port.

gRPC sets SO_REUSEPORT by default, so without care a second server on 8500 would start and quietly take
half the traffic of the first one. (One case only: each start-up costs a TensorFlow import.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from standin_support import REPO, StandIn

from contract.ports import free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_a_taken_grpc_port_fails_the_start(standin: StandIn, model_root: Path, tmp_path: Path) -> None:
    one_model = 'model_config_list { config { name: "digits" base_path: "/models/tiny" } }'
    (tmp_path / "models.config").write_text(one_model)
    argv = [
        sys.executable,
        "-m",
        "serving.tfserving.standin",
        f"--port={standin.grpc_port}",
        f"--rest_api_port={free_ports(1)[0]}",
        f"--model_config_file={tmp_path / 'models.config'}",
        f"--model_base_path_root={model_root}",
    ]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 1, result.stderr
    assert f"cannot start: cannot bind gRPC to 127.0.0.1:{standin.grpc_port}" in result.stderr
