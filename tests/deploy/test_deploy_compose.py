"""docker-compose.yml and docker-compose.cpu.yml, merged by a real Compose v2: services, health, GPUs, mounts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from loadtest.ui import launch
from tests.deploy import checks
from tests.deploy.conftest import CPU, DEFAULT, REPO

SERVICES = {"torchserve", "tfserving", "gateway", "locust-master", "locust-worker"}
OBSERVE = {"prometheus", "grafana"}
GPU_SERVICES = {"torchserve", "tfserving"}


def test_observe_profile_adds_only_prometheus_and_grafana(compose: Callable[..., Any]) -> None:
    assert set(compose(DEFAULT)["services"]) == SERVICES
    assert set(compose(DEFAULT, ("observe",))["services"]) == SERVICES | OBSERVE
    assert set(compose(CPU)["services"]) == SERVICES
    for name in OBSERVE:
        assert compose(DEFAULT, ("observe",))["services"][name]["profiles"] == ["observe"]


@pytest.mark.parametrize("which", ["default", "cpu"])
def test_every_image_is_pinned(which: str, default_cfg: Any, cpu_cfg: Any) -> None:
    cfg = default_cfg if which == "default" else cpu_cfg
    assert checks.unpinned_images(cfg) == []


def test_unpinned_images_are_caught(default_cfg: Any) -> None:
    default_cfg["services"]["grafana"]["image"] = "grafana/grafana"
    default_cfg["services"]["prometheus"]["image"] = "prom/prometheus:latest"
    default_cfg["services"]["torchserve"]["build"]["args"] = {"BASE_IMAGE": "pytorch/torchserve"}
    problems = checks.unpinned_images(default_cfg)
    assert len(problems) == 3, problems
    assert checks.image_problems("localhost:5000/x") == ["image 'localhost:5000/x' has no tag"]
    assert checks.image_problems("x@sha256:" + "0" * 64) == []


@pytest.mark.parametrize("which", ["default", "cpu"])
def test_every_service_is_healthchecked_restarted_and_limited(which: str, default_cfg: Any, cpu_cfg: Any) -> None:
    cfg = default_cfg if which == "default" else cpu_cfg
    assert checks.missing_healthchecks(cfg) == []
    assert checks.missing_restart_or_limits(cfg) == []
    assert checks.bad_dependencies(cfg) == []


def test_missing_health_restart_limits_and_weak_dependencies_are_caught(default_cfg: Any) -> None:
    services = default_cfg["services"]
    del services["gateway"]["healthcheck"]
    services["grafana"]["healthcheck"] = {"disable": True}
    del services["tfserving"]["restart"]
    del services["torchserve"]["deploy"]["resources"]["limits"]["memory"]
    services["gateway"]["depends_on"]["torchserve"]["condition"] = "service_started"
    assert len(checks.missing_healthchecks(default_cfg)) == 2
    assert len(checks.missing_restart_or_limits(default_cfg)) == 2
    assert checks.bad_dependencies(default_cfg) == ["gateway depends on torchserve with condition 'service_started'"]


def test_dependencies_are_the_data_path(default_cfg: Any) -> None:
    deps = {name: set(svc.get("depends_on") or {}) for name, svc in default_cfg["services"].items()}
    assert deps == {
        "torchserve": set(),
        "tfserving": set(),
        "gateway": {"torchserve", "tfserving"},
        "locust-master": {"gateway"},
        "locust-worker": {"locust-master"},
        "prometheus": set(),
        "grafana": {"prometheus"},
    }


def test_gpu_reserved_by_default_for_both_model_servers(default_cfg: Any) -> None:
    gpus = checks.gpu_devices(default_cfg)
    assert set(gpus) == GPU_SERVICES
    for devices in gpus.values():
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert default_cfg["services"]["torchserve"]["environment"]["TS_NUMBER_OF_GPU"] == "1"


def test_cpu_override_removes_every_gpu_reservation(cpu_cfg: Any) -> None:
    assert checks.gpu_devices(cpu_cfg) == {}
    assert cpu_cfg["services"]["torchserve"]["environment"]["TS_NUMBER_OF_GPU"] == "0"
    # the limits survive the reset of the reservations
    for name in GPU_SERVICES:
        assert cpu_cfg["services"][name]["deploy"]["resources"]["limits"]["cpus"] == 2


def test_gpu_check_would_catch_a_reservation_left_in_the_cpu_config(cpu_cfg: Any) -> None:
    cpu_cfg["services"]["tfserving"]["deploy"]["resources"]["reservations"] = {
        "devices": [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]
    }
    assert set(checks.gpu_devices(cpu_cfg)) == {"tfserving"}


def test_cpu_override_builds_on_the_cpu_tags_under_their_own_names(default_cfg: Any, cpu_cfg: Any) -> None:
    assert cpu_cfg["services"]["tfserving"]["build"]["args"]["BASE_IMAGE"] == "tensorflow/serving:2.20.0"
    assert cpu_cfg["services"]["torchserve"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    for name in GPU_SERVICES:
        assert cpu_cfg["services"][name]["image"] == default_cfg["services"][name]["image"] + "-cpu"
    assert not cpu_cfg["services"]["tfserving"].get("command")  # no GPU memory to share


def test_knobs_take_effect(compose: Callable[..., Any]) -> None:
    cfg = compose(
        DEFAULT,
        env={
            "TWINSERVE_GPU_COUNT": "2",
            "TWINSERVE_TFS_GPU_MEMORY_FRACTION": "0.25",
            "TWINSERVE_BACKEND_CPUS": "3",
            "TWINSERVE_BACKEND_MEMORY": "6g",
            "TWINSERVE_BIND": "0.0.0.0",
            "TWINSERVE_LOCUST_WORKERS": "3",
        },
    )
    s = cfg["services"]
    assert [d["count"] for devices in checks.gpu_devices(cfg).values() for d in devices] == [2, 2]
    assert s["torchserve"]["environment"]["TS_NUMBER_OF_GPU"] == "2"
    assert s["tfserving"]["command"] == ["--per_process_gpu_memory_fraction=0.25"]
    for name in GPU_SERVICES:
        assert s[name]["deploy"]["resources"]["limits"] == {"cpus": 3, "memory": str(6 * 1024**3)}
    assert {p["host_ip"] for p in s["gateway"]["ports"]} == {"0.0.0.0"}
    assert {p["host_ip"] for p in s["locust-master"]["ports"]} == {"0.0.0.0"}
    assert s["locust-worker"]["deploy"]["replicas"] == 3


def test_locust_services_run_the_web_ui_as_launch_py_renders_it(default_cfg: Any, cpu_cfg: Any) -> None:
    """compose cannot call Python: its Locust commands must equal loadtest/ui/launch.py's, which Kubernetes renders."""
    for cfg in (default_cfg, cpu_cfg):
        s = cfg["services"]
        for role in ("master", "worker"):
            svc = s[f"locust-{role}"]
            assert svc["entrypoint"] == list(launch.LAUNCHER), role
            assert svc["command"] == launch.container_args(role), role
            models = {m["target"]: m for m in svc["volumes"] if m["target"].startswith(launch.ARTIFACTS)}
            assert set(models) == {f"{launch.ARTIFACTS}/manifest.json", f"{launch.ARTIFACTS}/samples"}, role
            assert all(m["read_only"] and m["source"] == str(REPO / "artifacts" / m["target"].rsplit("/", 1)[1])
                       for m in models.values()), role  # fmt: skip
        results = next(m for m in s["locust-master"]["volumes"] if m["target"].startswith(launch.WORKDIR + "/results"))
        assert results["target"] == f"{launch.WORKDIR}/{launch.RESULTS}" and results["type"] == "bind"
        assert results["source"] == str(REPO / launch.RESULTS) and not results.get("read_only")
        assert s["locust-worker"]["deploy"]["replicas"] == 1
    assert launch.container_args("worker")[launch.container_args("worker").index("--master-host") + 1] == (
        launch.MASTER_SERVICE
    )
    assert launch.MASTER_SERVICE in default_cfg["services"]


def test_tf_serving_gets_a_gpu_memory_share_by_default(default_cfg: Any) -> None:
    assert default_cfg["services"]["tfserving"]["command"] == ["--per_process_gpu_memory_fraction=0.4"]


def test_model_servers_get_the_same_resources(default_cfg: Any, cpu_cfg: Any) -> None:
    for cfg in (default_cfg, cpu_cfg):
        ts, tf = (cfg["services"][n]["deploy"]["resources"] for n in ("torchserve", "tfserving"))
        assert ts == tf


def test_ports_are_published_on_loopback_only_by_default(default_cfg: Any) -> None:
    assert checks.exposed_beyond_loopback(default_cfg) == []
    default_cfg["services"]["grafana"]["ports"][0]["host_ip"] = ""
    assert checks.exposed_beyond_loopback(default_cfg) == ["grafana: port 3000 published on every interface"]


def test_artifacts_and_config_are_mounted_read_only(default_cfg: Any) -> None:
    assert checks.writable_bind_mounts(default_cfg, REPO, "artifacts") == []
    assert checks.writable_bind_mounts(default_cfg, REPO, "deploy") == []
    vol = next(v for v in default_cfg["services"]["tfserving"]["volumes"] if v["target"] == "/models")
    vol["read_only"] = False
    assert checks.writable_bind_mounts(default_cfg, REPO, "artifacts") == [
        f"tfserving: {REPO / 'artifacts/tfserving'} -> /models is writable"
    ]


def test_built_images_are_never_pulled(default_cfg: Any) -> None:
    policies = {n: s.get("pull_policy") for n, s in default_cfg["services"].items() if n not in OBSERVE}
    assert policies == {
        "torchserve": "build",
        "tfserving": "build",
        "gateway": "build",
        "locust-master": "build",
        "locust-worker": "never",
    }
    assert default_cfg["services"]["locust-worker"]["image"] == default_cfg["services"]["locust-master"]["image"]


def test_our_images_are_tagged_with_the_project_version(default_cfg: Any) -> None:
    version = next(
        line.split('"')[1] for line in (REPO / "pyproject.toml").read_text().splitlines() if line.startswith("version")
    )
    for name, svc in default_cfg["services"].items():
        if name not in OBSERVE:
            assert svc["image"].startswith("twinserve/") and svc["image"].endswith(":" + version), svc["image"]
