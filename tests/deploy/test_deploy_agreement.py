"""The containers and the native stack read the same files: prove ports, models, versions, batching, tokens,
scrape targets and dashboard metrics agree between compose, the Dockerfiles and the native configs."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from contract.ports import Ports
from gateway.exposure import refusal
from gateway.settings import Settings
from gateway.telemetry import Metrics
from loadtest import targets as lt_targets
from models.specs import SPECS
from serving.torchserve.launch import WORKER_ENV
from serving.torchserve.launch_config import read_properties
from tests.deploy import checks
from tests.deploy.checks import Instruction
from tests.deploy.conftest import REPO, STANDIN

TS_CONFIG = read_properties((REPO / "serving/torchserve/config.properties").read_text())
TF_DIR = REPO / "serving/tfserving"
MODELS_CONFIG = (TF_DIR / "models.config").read_text()
BATCHING = (TF_DIR / "batching_parameters.txt").read_text()
MONITORING = (TF_DIR / "monitoring.config").read_text()
DASHBOARD = json.loads((REPO / "deploy/grafana/dashboards/twinserve.json").read_text())
PROMETHEUS = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
KEYS = "torchserve-keys"


def entrypoint(instructions: list[Instruction]) -> list[str]:
    return next(i for i in instructions if i.keyword == "ENTRYPOINT").exec_form()


def flags(argv: list[str]) -> dict[str, str]:
    """`--name=value` flags of an argv (bare `--name` -> "true")."""
    out = {}
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            out[name] = value or "true"
    return out


def copied_to(instructions: list[Instruction], source: str) -> str:
    """Where a COPY puts `source` inside the image (a folder destination keeps the file name)."""
    for c in checks.context_copies(instructions):
        if source in c.sources:
            return c.dest + Path(source).name if c.dest.endswith("/") else c.dest
    raise AssertionError(f"{source} is not copied")


def workdir(instructions: list[Instruction]) -> str:
    return [i.args for i in instructions if i.keyword == "WORKDIR"][-1]


def ts_ports() -> dict[str, int]:
    return {
        "ts_inference": checks.port_of(TS_CONFIG["inference_address"]),
        "ts_management": checks.port_of(TS_CONFIG["management_address"]),
        "ts_metrics": checks.port_of(TS_CONFIG["metrics_address"]),
        "ts_grpc_inference": int(TS_CONFIG["grpc_inference_port"]),
        "ts_grpc_management": int(TS_CONFIG["grpc_management_port"]),
    }


# ---------------------------------------------------------------- ports


def test_ports_agree_everywhere(default_cfg: Any, dockerfiles: dict[str, list[Instruction]]) -> None:
    native = Ports()
    services = default_cfg["services"]
    assert ts_ports() == {k: v for k, v in native.as_dict().items() if k.startswith("ts_")}
    tf = flags(entrypoint(dockerfiles["tfserving"]))
    assert (int(tf["port"]), int(tf["rest_api_port"])) == (native.tf_grpc, native.tf_rest)
    env = services["gateway"]["environment"]
    assert (int(env["TWINSERVE_SERVER__PORT"]), int(env["TWINSERVE_SERVER__GRPC_PORT"])) == (
        native.gateway_rest,
        native.gateway_grpc,
    )
    expected = {
        "torchserve": {p: p for k, p in native.as_dict().items() if k.startswith("ts_")},
        "tfserving": {native.tf_grpc: native.tf_grpc, native.tf_rest: native.tf_rest},
        "gateway": {native.gateway_rest: native.gateway_rest, native.gateway_grpc: native.gateway_grpc},
    }
    for name, ports in expected.items():
        assert checks.published_ports(services[name]) == ports, name  # host port == container port (contracts.md)
    direct = {(fw, proto): port for (fw, proto, *_), port in lt_targets.PORTS.items() if fw != "gateway"}
    assert direct == {
        ("torchserve", "rest"): native.ts_inference,
        ("torchserve", "grpc"): native.ts_grpc_inference,
        ("tfserving", "rest"): native.tf_rest,
        ("tfserving", "grpc"): native.tf_grpc,
    }


def test_config_properties_binds_every_interface_in_the_container() -> None:
    for key in ("inference_address", "management_address", "metrics_address"):
        assert "://0.0.0.0:" in TS_CONFIG[key], key
    assert TS_CONFIG["grpc_inference_address"] == TS_CONFIG["grpc_management_address"] == "0.0.0.0"


def test_gateway_settings_from_the_compose_environment(default_cfg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = default_cfg["services"]["gateway"]["environment"]
    for key in list(os.environ):
        if key.startswith("TWINSERVE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings()  # the real settings class validates the compose environment
    ts, tf = s.backends.torchserve, s.backends.tfserving
    assert ts.rest_url == "http://torchserve:8080" and checks.port_of(ts.rest_url) == ts_ports()["ts_inference"]
    assert ts.grpc_target == f"torchserve:{TS_CONFIG['grpc_inference_port']}"
    assert tf.rest_url == f"http://tfserving:{Ports().tf_rest}" and tf.grpc_target == f"tfserving:{Ports().tf_grpc}"
    assert (s.server.host, s.server.port, s.server.grpc_port) == ("0.0.0.0", 8000, 8001)
    assert refusal(s) is None  # it binds every interface in its container, published on loopback only
    assert ts.key_file == Path("/app/run/torchserve/key_file.json")
    services = set(default_cfg["services"])
    for url in (ts.rest_url, ts.grpc_target, tf.rest_url, tf.grpc_target):
        assert re.sub(r"^\w+://", "", url).split(":")[0] in services


@pytest.mark.parametrize("keys", [None, '["k1"]'])
def test_gateway_published_widely_needs_keys(compose: Any, monkeypatch: pytest.MonkeyPatch, keys: str | None) -> None:
    """TWINSERVE_BIND beyond loopback reaches the gateway: without keys it would refuse to start."""
    extra = {"TWINSERVE_BIND": "0.0.0.0", **({"TWINSERVE_LIMITS__API_KEYS": keys} if keys else {})}
    env = compose(env=extra)["services"]["gateway"]["environment"]
    for key in list(os.environ):
        if key.startswith("TWINSERVE_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    problem = refusal(Settings())
    if keys:
        assert problem is None and Settings().api_keys() == ["k1"]
    else:
        assert problem is not None and "TWINSERVE_SERVER__ALLOW_UNAUTHENTICATED" in problem


# ---------------------------------------------------------------- models and versions


def test_model_names_and_versions_agree(default_cfg: Any) -> None:
    names = set(SPECS)
    assert set(checks.textproto_values(MODELS_CONFIG, "name")) == names
    assert {p.stem for p in (REPO / "serving/torchserve/model-config").glob("*.yaml")} == names
    routes = yaml.safe_load((REPO / "gateway/routes.yaml").read_text())["models"]
    assert set(routes) == names
    for name, spec in SPECS.items():
        assert routes[name]["versions"] == [str(spec.version)]
    # models.config's base paths all lie below the /models mount of artifacts/tfserving
    mount = next(v for v in default_cfg["services"]["tfserving"]["volumes"] if v["target"] == "/models")
    assert Path(mount["source"]) == REPO / "artifacts/tfserving" and mount["read_only"]
    assert sorted(checks.textproto_values(MODELS_CONFIG, "base_path")) == sorted(f"/models/{n}" for n in names)


def test_torchserve_model_store_is_the_read_only_mar_mount(default_cfg: Any) -> None:
    store = next(
        v for v in default_cfg["services"]["torchserve"]["volumes"] if v["source"] == str(REPO / "artifacts/torchserve")
    )
    assert store["target"] == TS_CONFIG["model_store"] and store["read_only"]
    assert TS_CONFIG["load_models"] == "all"


def test_exported_artifacts_match_the_mounts_when_present() -> None:
    manifest = REPO / "artifacts/manifest.json"
    if not manifest.is_file():
        pytest.skip("no artifacts (make export writes them)")
    recorded = json.loads(manifest.read_text())["models"]
    for name, spec in SPECS.items():
        assert recorded[name]["version"] == spec.version
        assert (REPO / "artifacts/tfserving" / name / str(spec.version) / "saved_model.pb").is_file()
        assert (REPO / "artifacts/torchserve" / f"{name}.mar").is_file()
        assert (REPO / "artifacts/samples" / f"{name}.npz").is_file()  # what the Locust workers mount
    # the containers run as other uids than the exporting user: everything must be world-readable
    unreadable = [p for p in (REPO / "artifacts").rglob("*") if not p.stat().st_mode & 0o004]
    assert unreadable == []


# ---------------------------------------------------------------- batching


def test_tf_serving_batches_with_the_repository_file(dockerfiles: dict[str, list[Instruction]]) -> None:
    tf = dockerfiles["tfserving"]
    f = flags(entrypoint(tf))
    assert f["enable_batching"] == "true"
    assert f["batching_parameters_file"] == copied_to(tf, "serving/tfserving/batching_parameters.txt")
    assert f["model_config_file"] == copied_to(tf, "serving/tfserving/models.config")
    assert f["monitoring_config_file"] == copied_to(tf, "serving/tfserving/monitoring.config")


def test_batch_limits_are_consistent_across_stacks() -> None:
    max_batch = int(checks.textproto_values(BATCHING, "max_batch_size")[0])
    allowed = [int(v) for v in checks.textproto_values(BATCHING, "allowed_batch_sizes")]
    if allowed:  # TF Serving refuses anything else
        assert allowed == sorted(set(allowed)) and allowed[-1] == max_batch
    assert int(checks.textproto_values(BATCHING, "batch_timeout_micros")[0]) > 0
    for path in sorted((REPO / "serving/torchserve/model-config").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        # neither stack may form bigger batches than the other allows (tests/loadtest/test_batching_knobs.py: equal)
        assert cfg["batchSize"] <= max_batch, path.name
        assert not allowed or cfg["batchSize"] in allowed, path.name
        assert cfg["minWorkers"] >= 1 and cfg["maxWorkers"] >= cfg["minWorkers"], path.name


# ---------------------------------------------------------------- token handling


def test_token_auth_stays_on_and_the_key_volume_is_shared_read_only(
    default_cfg: Any, cpu_cfg: Any, dockerfiles: dict[str, list[Instruction]]
) -> None:
    assert TS_CONFIG["disable_token_authorization"] == "false" and TS_CONFIG["enable_model_api"] == "false"
    assert TS_CONFIG["enable_envvars_config"] == "true"  # why TS_NUMBER_OF_GPU works, and why TS_* are checked
    ts_workdir = workdir(dockerfiles["torchserve"])
    for cfg in (default_cfg, cpu_cfg):
        assert checks.token_problems(cfg, KEYS, ts_workdir) == []
    # Locust workers find the key at the native relative path (loadtest/targets.py) below their WORKDIR
    worker = [m["target"] for m in checks.mounts(default_cfg["services"]["locust-worker"], KEYS)]
    assert worker == [str(Path(workdir(dockerfiles["loadtest"])) / lt_targets.KEY_FILE.parent)]
    entry = (REPO / "deploy/torchserve/entrypoint.sh").read_text()
    assert "--ts-config /home/model-server/config.properties" in entry
    assert copied_to(dockerfiles["torchserve"], "serving/torchserve/config.properties") == (
        "/home/model-server/config.properties"
    )


def test_token_mistakes_are_caught(default_cfg: Any) -> None:
    s = default_cfg["services"]
    s["gateway"]["volumes"][0]["read_only"] = False
    s["torchserve"]["environment"]["TS_DISABLE_TOKEN_AUTHORIZATION"] = "true"
    s["gateway"]["environment"]["TWINSERVE_BACKENDS__TORCHSERVE__KEY_FILE"] = "/elsewhere/key_file.json"
    s["tfserving"]["command"] = ["--disable-token-auth"]
    problems = checks.token_problems(default_cfg, KEYS, "/home/model-server/keys")
    assert len(problems) == 4, problems
    assert checks.token_problems(default_cfg, KEYS, "/somewhere/else")[0].startswith("torchserve must mount")


# ---------------------------------------------------------------- healthchecks use what the images ship


def test_healthcheck_scripts_are_in_the_images(default_cfg: Any, dockerfiles: dict[str, list[Instruction]]) -> None:
    shipped = {
        "torchserve": copied_to(dockerfiles["torchserve"], "deploy/torchserve/ts_keys.py"),
        "tfserving": copied_to(dockerfiles["tfserving"], "deploy/tfserving/tfserving_health.sh"),
    }
    for name, path in shipped.items():
        assert path in default_cfg["services"][name]["healthcheck"]["test"], name
    assert copied_to(dockerfiles["torchserve"], "deploy/torchserve/entrypoint.sh") in entrypoint(
        dockerfiles["torchserve"]
    )
    gateway_hc = " ".join(default_cfg["services"]["gateway"]["healthcheck"]["test"])
    assert "127.0.0.1:8000/v2/health/ready" in gateway_hc
    probe = {n: copied_to(dockerfiles[n], "deploy/probe/probe.py") for n in ("gateway", "loadtest")}
    for service, image in (("gateway", "gateway"), ("locust-master", "loadtest"), ("locust-worker", "loadtest")):
        test = default_cfg["services"][service]["healthcheck"]["test"]
        assert probe[image] in test, service


def test_no_health_check_argument_contains_a_space(compose: Any) -> None:
    # podman (4.3, through the Docker API) splits a CMD health check's arguments on spaces
    for files in (("docker-compose.yml",), STANDIN):
        for name, service in compose(files, ("observe",))["services"].items():
            test = service["healthcheck"]["test"]
            assert test[0] == "CMD" and not any(" " in arg for arg in test), (name, test)


# ---------------------------------------------------------------- Prometheus and Grafana


def test_prometheus_scrapes_every_server_where_it_exports(default_cfg: Any) -> None:
    jobs = {j["job_name"]: j for j in PROMETHEUS["scrape_configs"]}
    target = {name: j["static_configs"][0]["targets"] for name, j in jobs.items()}
    assert target == {
        "gateway": [f"gateway:{Ports().gateway_rest}"],
        "torchserve": [f"torchserve:{ts_ports()['ts_metrics']}"],
        "tfserving": [f"tfserving:{Ports().tf_rest}"],
    }
    assert TS_CONFIG["metrics_mode"] == "prometheus"
    assert jobs["tfserving"]["metrics_path"] == checks.textproto_values(MONITORING, "path")[0]
    assert checks.textproto_values(MONITORING, "enable") == ["true"]
    assert jobs["gateway"]["metrics_path"] == jobs["torchserve"]["metrics_path"] == "/metrics"
    prom = default_cfg["services"]["prometheus"]
    config = next(v for v in prom["volumes"] if v["target"] == "/etc/prometheus/prometheus.yml")
    assert Path(config["source"]) == REPO / "deploy/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]


def test_grafana_is_provisioned_with_the_datasource_and_dashboard(default_cfg: Any) -> None:
    prov = REPO / "deploy/grafana/provisioning"
    (ds,) = yaml.safe_load((prov / "datasources/prometheus.yml").read_text())["datasources"]
    (provider,) = yaml.safe_load((prov / "dashboards/twinserve.yml").read_text())["providers"]
    grafana = default_cfg["services"]["grafana"]
    targets = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    assert targets[provider["options"]["path"]] == REPO / "deploy/grafana/dashboards"
    assert targets["/etc/grafana/provisioning"] == prov
    assert ds["url"] == "http://prometheus:9090" and 9090 in checks.published_ports(
        default_cfg["services"]["prometheus"]
    )
    used = {t["datasource"]["uid"] for p in DASHBOARD["panels"] for t in p.get("targets", [])} | {
        p["datasource"]["uid"] for p in DASHBOARD["panels"] if "datasource" in p
    }
    assert used == {ds["uid"]}
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (
        home.startswith(provider["options"]["path"] + "/")
        and (REPO / "deploy/grafana/dashboards" / Path(home).name).is_file()
    )


def exprs() -> list[str]:
    return [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])] + [
        v["query"]["query"] for v in DASHBOARD["templating"]["list"]
    ]


def test_dashboard_queries_only_what_the_gateway_exports() -> None:
    # An unused labelled metric exposes no sample, so read names and label names off the metric objects.
    metrics = Metrics()
    exported: dict[str, set[str]] = {}
    for attr in vars(metrics).values():
        if hasattr(attr, "_labelnames") and hasattr(attr, "_name"):
            suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",)}.get(attr._type, ("",))
            for suffix in suffixes:
                exported[attr._name + suffix] = set(attr._labelnames) | ({"le"} if suffix == "_bucket" else set())
    used = {m for e in exprs() for m in re.findall(r"\btwinserve_gateway_\w+", e)}
    assert used, "the dashboard shows no gateway metric"
    assert used <= set(exported), used - set(exported)
    for e in exprs():
        for by in re.findall(r"by \(([^)]*)\)\s*\(\s*(?:rate\()?\s*(twinserve_gateway_\w+)", e):
            labels = {x.strip() for x in by[0].split(",")}
            assert labels <= exported[by[1]], (e, labels - exported[by[1]])
    needed = {
        "twinserve_gateway_request_duration_seconds_bucket",
        "twinserve_gateway_requests_total",
        "twinserve_gateway_in_flight_requests",
    }
    assert needed <= used


def test_dashboard_shows_each_servers_own_metrics() -> None:
    text = " ".join(exprs())
    for name in (
        "ts_inference_latency_microseconds",
        "ts_queue_latency_microseconds",
        ":tensorflow:serving:request_latency_bucket",
        ":tensorflow:serving:request_count",
        "GPUMemoryUsed",
    ):
        assert name in text, name
    # TorchServe's own metric definitions (the installed 0.12.0 package) name these metrics and labels
    import ts

    ts_metrics = yaml.safe_load((Path(ts.__file__).parent / "configs/metrics.yaml").read_text())["ts_metrics"]
    defined = {m["name"]: set(m["dimensions"]) for kind in ts_metrics.values() for m in kind}
    for name in ("ts_inference_latency_microseconds", "ts_queue_latency_microseconds", "ts_inference_requests_total"):
        assert "model_name" in defined[name], name
    for name in ("GPUMemoryUsed", "GPUUtilization", "GPUMemoryUtilization"):
        assert "DeviceId" in defined[name], name
    percentiles = [e for e in exprs() if "histogram_quantile" in e]
    assert {"0.5", "0.99"} <= {re.search(r"histogram_quantile\(([\d.]+)", e).group(1) for e in percentiles}  # type: ignore[union-attr]


def test_torchserve_workers_get_the_same_environment_natively_and_in_the_image(
    dockerfiles: dict[str, list[Instruction]],
) -> None:
    """The native launch adds WORKER_ENV (tests/supervisor checks it); the image must set it too."""
    env: dict[str, str] = {}
    for ins in dockerfiles["torchserve"]:
        if ins.keyword == "ENV":
            env |= dict(word.split("=", 1) for word in shlex.split(ins.args))
    assert WORKER_ENV and WORKER_ENV.items() <= env.items()


def test_the_standin_container_takes_the_real_servers_files_and_flags(
    dockerfiles: dict[str, list[Instruction]], compose: Any
) -> None:
    real = flags(entrypoint(dockerfiles["tfserving"]))
    standin = flags(entrypoint(dockerfiles["tfserving-standin"]))
    assert standin.pop("host") == "0.0.0.0"  # the stand-in binds loopback unless told; the real server never asks
    assert standin == real
    copied = {i.args for i in dockerfiles["tfserving-standin"] if i.keyword == "COPY"}
    assert any("/etc/twinserve/tfserving/" in c and "models.config" in c for c in copied)


def test_the_standin_is_explicit_and_labelled_in_compose(compose: Any) -> None:
    real = compose(("docker-compose.yml", "docker-compose.cpu.yml"))["services"]["tfserving"]
    standin = compose(STANDIN)["services"]["tfserving"]
    assert "standin" in standin["container_name"] and standin["labels"]["org.twinserve.tf-side"] == "standin"
    assert standin["image"] == "twinserve/tfserving-standin:0.1.0"
    assert standin["build"]["dockerfile"] == "serving/tfserving/standin/Dockerfile"
    assert not standin.get("command") and not standin["deploy"]["resources"]["reservations"].get("devices")
    for key in ("ports", "volumes", "healthcheck", "environment"):
        assert standin.get(key) == real.get(key), key  # same mounts, ports and health check as the real server
    # The default configuration never runs it.
    for files in (("docker-compose.yml",), ("docker-compose.yml", "docker-compose.cpu.yml")):
        assert "standin" not in compose(files)["services"]["tfserving"]["image"]
