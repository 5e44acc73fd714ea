"""Host-side discovery of the compose stack (`make bench STACK=compose`): run/compose/state.json, the contract
ports on the bind address, and the TF side as its own metrics say, whatever the state file claims."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtest import stack


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, list[str]]]:
    """A metrics endpoint on an ephemeral port whose body the test sets (body[0])."""
    body = [""]

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body[0].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/monitoring/prometheus/metrics", body
    server.shutdown()


def test_probe_tells_the_standin_from_the_real_server(metrics_server: tuple[str, list[str]]) -> None:
    url, body = metrics_server
    body[0] = "# TYPE twinserve_tfserving_standin gauge\ntwinserve_tfserving_standin 1\n"
    assert stack.probe_tf_side(url) == "standin"
    body[0] = ':tensorflow:serving:request_count{model_name="digits"} 3\n'
    assert stack.probe_tf_side(url) == "real"
    assert stack.probe_tf_side("http://127.0.0.1:9/monitoring/prometheus/metrics", timeout=1) is None


def write_state(tmp_path: Path, tf_side: str) -> Path:
    path = tmp_path / "compose" / "state.json"
    path.parent.mkdir(parents=True)
    services = {"torchserve": {"ready": True}, "tfserving": {"ready": True}, "gateway": {"ready": True}}
    state = {"source": "compose", "host": "127.0.0.2", "tf_side": tf_side, "services": services}
    path.write_text(json.dumps({**state, "run_dir": str(path.parent)}))
    return path


@pytest.mark.parametrize(
    ("claimed", "said", "want"), [("standin", "standin", "standin"), ("real", "standin", "standin")]
)
def test_compose_state_is_read_and_the_tf_side_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, claimed: str, said: str, want: str
) -> None:
    monkeypatch.setattr(stack, "probe_tf_side", lambda url, timeout=5.0: said)
    monkeypatch.setattr(stack, "refresh_compose_key", lambda run_dir, project="twinserve": True)
    info = stack.from_compose_state(write_state(tmp_path, claimed))
    assert info.source == "compose" and info.tf_side == want and info.has_gateway
    assert info.url("gateway", "gateway_rest") == "http://127.0.0.2:8000"
    assert info.run_dir == tmp_path / "compose"
    assert bool(info.notes) == (claimed != said)  # a state file that lies is said so


def test_discover_prefers_native_then_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack, "_resolves", lambda host: False)
    monkeypatch.setattr(stack, "probe_tf_side", lambda url, timeout=5.0: None)
    monkeypatch.setattr(stack, "refresh_compose_key", lambda run_dir, project="twinserve": False)
    compose_state = write_state(tmp_path, "standin")
    native = tmp_path / "state.json"
    assert stack.discover("auto", native, compose_state).source == "compose"
    assert stack.discover("compose", native, compose_state).tf_side == "standin"
    with pytest.raises(FileNotFoundError, match="make up STACK=compose"):
        stack.discover("compose", native, tmp_path / "nothing.json")
    with pytest.raises(FileNotFoundError, match="make up"):
        stack.discover("native", native, compose_state)


@pytest.mark.parametrize(
    ("resolving", "want"),
    [
        # compose, or Kubernetes' plain path: every service by name, so every target
        ({"torchserve", "tfserving", "gateway"}, {f"{fw}-{p}-{path}" for fw in ("torchserve", "tfserving")
                                                  for p in ("rest", "grpc") for path in ("direct", "gateway")}),
        # Kubernetes with KServe: only the gateway resolves in the namespace; it still routes to both frameworks
        ({"gateway"}, {f"{fw}-{p}-gateway" for fw in ("torchserve", "tfserving") for p in ("rest", "grpc")}),
        # a model server alone: its direct targets, no gateway ones
        ({"torchserve"}, {"torchserve-rest-direct", "torchserve-grpc-direct"}),
    ],
)  # fmt: skip
def test_in_network_discovery_offers_what_each_name_reaches(
    monkeypatch: pytest.MonkeyPatch, resolving: set[str], want: set[str]
) -> None:
    monkeypatch.setattr(stack, "_resolves", lambda host: host in resolving)  # which names the network's DNS knows
    monkeypatch.setattr(stack, "probe_tf_side", lambda url, timeout=5.0: None)
    found = stack.from_compose().targets(["digits"])
    assert {t.id.removesuffix(":digits") for t in found} == want
    assert all(t.host == ("gateway" if t.path == "gateway" else t.framework) for t in found)
