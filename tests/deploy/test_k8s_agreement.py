"""The Kubernetes manifests agree with compose (as `docker compose config` merges it) and with serving/.

Compose is read here by the real Compose v2 binary, not by deploy.k8s's own reader, so a reader bug shows up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from contract.ports import Ports
from deploy.k8s.kserve import TF_NAMESPACE, TS_NAMESPACE
from deploy.k8s.render import Options, load_all, render
from deploy.k8s.sources import read_batching_parameters, read_properties
from deploy.k8s.storage import lay_out
from gateway.backends import KServeV1Backend, PerModelBackend, TFServingBackend, build_backends
from gateway.settings import Settings
from loadtest.ui import launch
from loadtest.ui.catalog import environment_for
from models.specs import SPECS
from tests.deploy.checks import textproto_values
from tests.deploy.conftest import CPU, DEFAULT, REPO

FLAVOURS = {"gpu": (True, DEFAULT), "cpu": (False, CPU)}


@pytest.fixture(scope="module", params=sorted(FLAVOURS))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(flavour name, folder rendered for it)."""
    out = tmp_path_factory.mktemp(request.param)
    render(out, Options(gpu=FLAVOURS[request.param][0]), progress=lambda _: None)
    return request.param, out


@pytest.fixture(scope="module")
def flavour(rendered: tuple[str, Path]) -> tuple[Any, list[Any]]:
    """(compose model, every rendered object) for one flavour."""
    from tests.deploy.conftest import run_compose

    name, out = rendered
    return run_compose(FLAVOURS[name][1]), [o for objs in load_all(out).values() for o in objs]


@pytest.fixture(scope="module")
def parts(rendered: tuple[str, Path]) -> dict[str, list[Any]]:
    """Rendered objects by folder (base, plain, kserve, operator): what one `kubectl apply -f` gets."""
    out: dict[str, list[Any]] = {}
    for path, objs in load_all(rendered[1]).items():
        out.setdefault(path.parent.name, []).extend(objs)
    return out


def obj(objs: list[Any], kind: str, name: str) -> Any:
    (found,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def container(objs: list[Any], deployment: str, name: str | None = None) -> Any:
    pod = obj(objs, "Deployment", deployment)["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == (name or deployment))


def to_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}[unit]


SERVICES = {"torchserve": "torchserve", "tfserving": "tfserving", "gateway": "gateway"}
LOCUST = {"locust-master": "locust-master", "locust-worker": "locust-worker"}


def test_images_match_compose(flavour: tuple[Any, list[Any]]) -> None:
    cfg, objs = flavour
    for name in (*SERVICES, *LOCUST):
        assert container(objs, name)["image"] == cfg["services"][name]["image"], name
    assert obj(objs, "LocustTest", "twinserve-ui")["spec"]["image"] == cfg["services"]["locust-master"]["image"]


def test_resources_match_compose(flavour: tuple[Any, list[Any]]) -> None:
    """Same CPU/memory limits as compose, requested in full; GPUs as compose reserves them."""
    cfg, objs = flavour
    for name in (*SERVICES, *LOCUST):
        limits = cfg["services"][name]["deploy"]["resources"]["limits"]
        res = container(objs, name)["resources"]
        assert res["requests"] == res["limits"], name
        assert float(res["limits"]["cpu"]) == float(limits["cpus"]), name
        assert to_bytes(res["limits"]["memory"]) == int(limits["memory"]), name
        devices = cfg["services"][name]["deploy"]["resources"].get("reservations", {}).get("devices", [])
        gpus = sum(int(d["count"]) for d in devices)
        assert int(res["limits"].get("nvidia.com/gpu", 0)) == gpus, name
    for isvc in (o for o in objs if o["kind"] == "InferenceService"):
        stack = isvc["metadata"]["labels"]["twinserve.io/stack"]
        assert isvc["spec"]["predictor"]["model"]["resources"] == container(objs, stack)["resources"]


def test_ports_match_compose_and_the_contract(flavour: tuple[Any, list[Any]]) -> None:
    cfg, objs = flavour
    contract = set(Ports().as_dict().values())
    for name in SERVICES:
        published = {int(p["target"]) for p in cfg["services"][name]["ports"]}
        svc = {p["port"] for p in obj(objs, "Service", name)["spec"]["ports"]}
        pod = {p["containerPort"] for p in container(objs, name)["ports"]}
        assert svc == pod == published, name
        assert svc <= contract, name


def test_health_probes_match_compose(flavour: tuple[Any, list[Any]]) -> None:
    cfg, objs = flavour
    for name in ("torchserve", "tfserving"):
        check = cfg["services"][name]["healthcheck"]
        c = container(objs, name)
        assert c["readinessProbe"]["exec"]["command"] == check["test"][1:], name
        assert c["startupProbe"]["exec"]["command"] == check["test"][1:], name
        assert c["readinessProbe"]["failureThreshold"] == check["retries"], name
        assert "livenessProbe" not in c, name  # compose never restarts an unhealthy server either
    check = cfg["services"]["gateway"]["healthcheck"]
    probe = container(objs, "gateway")["readinessProbe"]["httpGet"]
    assert f"http://127.0.0.1:{probe['port']}{probe['path']}" in " ".join(check["test"])


def test_gateway_environment_is_compose_s(flavour: tuple[Any, list[Any]]) -> None:
    cfg, objs = flavour
    env = {e["name"]: e["value"] for e in container(objs, "gateway")["env"]}
    compose_env = cfg["services"]["gateway"]["environment"]
    assert {k: env[k] for k in compose_env} == compose_env
    assert set(env) - set(compose_env) == {"TWINSERVE_ROUTES_FILE"}


def gateway_settings(objs: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The gateway's own Settings from the rendered env and the routes ConfigMap among `objs`."""
    env = {e["name"]: e["value"] for e in container(objs, "gateway")["env"]}
    routes = tmp_path / "routes.yaml"
    routes.write_text(obj(objs, "ConfigMap", "gateway-routes")["data"]["routes.yaml"])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TWINSERVE_ROUTES_FILE", str(routes))
    return Settings()


def test_gateway_settings_load_and_point_at_the_rendered_services(
    parts: dict[str, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain flavour: the gateway's own Settings accept the rendered env and routes; every backend URL names a
    rendered Service, and no model overrides its stack's address."""
    objs = parts["base"] + parts["plain"]
    settings = gateway_settings(objs, tmp_path, monkeypatch)
    assert sorted(settings.routes.models) == sorted(SPECS)
    assert all(not route.endpoints for route in settings.routes.models.values())
    services = {o["metadata"]["name"]: {p["port"] for p in o["spec"]["ports"]} for o in objs if o["kind"] == "Service"}
    b = settings.backends
    for address in (b.torchserve.rest_url, b.torchserve.management_url, b.tfserving.rest_url):
        host, port = re.fullmatch(r"http://([\w-]+):(\d+)", str(address)).groups()  # type: ignore[union-attr]
        assert int(port) in services[host], address
    for target in (b.torchserve.grpc_target, b.tfserving.grpc_target):
        host, port = target.split(":")
        assert int(port) in services[host], target
    key_dir = str(Path(str(b.torchserve.key_file)).parent)
    mounts = {m["mountPath"]: m["name"] for m in container(objs, "gateway")["volumeMounts"]}
    assert mounts[key_dir] == "torchserve-keys"


def test_each_flavour_carries_its_own_routes(parts: dict[str, list[Any]]) -> None:
    """base/ has no routes (it goes with either flavour); plain/ has routes.yaml as is, kserve/ one of its own."""
    routes = {
        part: [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "gateway-routes"]
        for part, objs in parts.items()
    }
    assert {part: len(found) for part, found in routes.items()} == {"base": 0, "plain": 1, "kserve": 1, "operator": 0}
    assert routes["plain"][0]["data"]["routes.yaml"] == (REPO / "gateway/routes.yaml").read_text()


def test_kserve_routes_point_each_model_at_its_inference_services(
    parts: dict[str, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KServe flavour: each model's endpoints are its InferenceServices' predictor hosts, in the protocol the
    runtime speaks (TorchServe: KServe v1; TF Serving: its own REST), and the gateway's Settings and backend
    selection accept them; everything else is gateway/routes.yaml."""
    objs = parts["base"] + parts["kserve"]
    settings = gateway_settings(objs, tmp_path, monkeypatch)
    reference = Settings(routes_file=REPO / "gateway/routes.yaml").routes.models
    assert sorted(settings.routes.models) == sorted(SPECS) == sorted(reference)
    isvcs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs if o["kind"] == "InferenceService"}
    stacks = {
        "torchserve": (TS_NAMESPACE, "kserve-torchserve", "kserve-v1"),
        "tfserving": (TF_NAMESPACE, "kserve-tensorflow-serving", "rest"),
    }
    for name, route in settings.routes.models.items():
        assert route.model_dump(exclude={"endpoints"}) == reference[name].model_dump(exclude={"endpoints"}), name
        assert set(route.endpoints) == set(stacks), name
        for stack, (namespace, runtime, protocol) in stacks.items():
            endpoint = route.endpoints[stack]
            # KServe's RawDeployment Service for an InferenceService: <name>-predictor, port 80 -> the container
            assert endpoint.rest_url == f"http://{name}-predictor.{namespace}.svc.cluster.local", (name, stack)
            assert endpoint.protocol == protocol, (name, stack)
            isvc = isvcs[(namespace, name)]
            assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
            model = isvc["spec"]["predictor"]["model"]
            assert (model["runtime"], model["protocolVersion"]) == (runtime, "v1"), (name, stack)
    backends = build_backends(settings)
    for stack in stacks:  # every model has its own hosts: no client for the stacks' shared addresses
        chosen = backends[stack]
        assert isinstance(chosen, PerModelBackend) and chosen.shared is None, stack
    assert all(isinstance(backends["torchserve"].client(m), KServeV1Backend) for m in SPECS)  # type: ignore[attr-defined]
    assert all(type(backends["tfserving"].client(m)) is TFServingBackend for m in SPECS)  # type: ignore[attr-defined]


def without_role_flags(argv: list[str]) -> list[str]:
    """argv less Locust's master/worker flags (`--master-port=5557` or `--master-port 5557` alike)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg.startswith(("--master", "--worker")):
            skip = "=" not in arg and arg not in ("--master", "--worker")
        else:
            out.append(arg)
    return out


def test_locust_runs_compose_s_commands(flavour: tuple[Any, list[Any]], dockerfiles: dict[str, Any]) -> None:
    cfg, objs = flavour
    for name in LOCUST:
        assert container(objs, name)["command"] == cfg["services"][name]["entrypoint"], name
        assert container(objs, name)["args"] == cfg["services"][name]["command"], name
    # The operator runs the image's ENTRYPOINT + the seed + its own role flags: that must be the Locust command the
    # launcher runs for compose's arguments, with the environment the launcher gives it.
    spec = obj(objs, "LocustTest", "twinserve-ui")["spec"]
    entry = next(i for i in dockerfiles["loadtest"] if i.keyword == "ENTRYPOINT").exec_form()
    assert entry[:2] == ["locust", "-f"] and (REPO / entry[2]).is_file()
    env = {v["name"]: v["value"] for v in spec["env"]["variables"]}
    operator_adds = {"master": ["--master", "--master-port=5557"], "worker": ["--worker", "--master-port=5557"]}
    for role in ("master", "worker"):
        args = launch.build_parser().parse_args(cfg["services"][f"locust-{role}"]["command"])
        want = launch.locust_command(args, locustfile=entry[2])
        got = [*entry[1:], *spec[role]["command"].split(), *operator_adds[role]]
        assert without_role_flags(got) == without_role_flags(want), role
        assert env == environment_for(args.stack, args.state, args.artifacts, None), role
    assert launch.MASTER_PORT == 5557  # the operator's fixed master port; Locust binds every interface by default
    assert spec["master"]["autostart"] is False and spec["master"]["autoquit"] == {"enabled": False}


def test_model_names_agree_everywhere(flavour: tuple[Any, list[Any]]) -> None:
    """models.specs = models.config = routes.yaml = InferenceService names in each stack's namespace."""
    _, objs = flavour
    models_config = set(textproto_values((REPO / "serving/tfserving/models.config").read_text(), "name"))
    routes = set(yaml.safe_load((REPO / "gateway/routes.yaml").read_text())["models"])
    for namespace in (TS_NAMESPACE, TF_NAMESPACE):
        names = {
            o["metadata"]["name"]
            for o in objs
            if o["kind"] == "InferenceService" and o["metadata"]["namespace"] == namespace
        }
        assert names == set(SPECS) == models_config == routes, namespace


def test_every_storage_uri_names_a_rendered_claim_in_its_namespace(flavour: tuple[Any, list[Any]]) -> None:
    """KServe resolves pvc://<claim>/... in the InferenceService's own namespace."""
    _, objs = flavour
    claims = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs if o["kind"] == "PersistentVolumeClaim"}
    for isvc in (o for o in objs if o["kind"] == "InferenceService"):
        uri = isvc["spec"]["predictor"]["model"]["storageUri"]
        claim = re.fullmatch(r"pvc://([^/]+)/.+", uri).group(1)  # type: ignore[union-attr]
        assert (isvc["metadata"]["namespace"], claim) in claims, uri


def test_tf_batching_is_the_same_file(flavour: tuple[Any, list[Any]]) -> None:
    """KServe's TF Serving gets the flags twinserve's image passes (serving/tfserving/Dockerfile's ENTRYPOINT)."""
    _, objs = flavour
    entrypoint = (REPO / "serving/tfserving/Dockerfile").read_text()
    assert "--enable_batching=true" in entrypoint and "--batching_parameters_file=" in entrypoint
    for isvc in (o for o in objs if o["kind"] == "InferenceService"):
        model = isvc["spec"]["predictor"]["model"]
        if model["runtime"] == "kserve-tensorflow-serving":
            assert "--enable_batching=true" in model["args"]
            assert "--batching_parameters_file=/mnt/models/batching_parameters.txt" in model["args"]


def test_network_policy_admits_the_gateway_to_every_serving_port(flavour: tuple[Any, list[Any]]) -> None:
    _, objs = flavour
    policy = obj(objs, "NetworkPolicy", "model-servers-from-gateway-only")
    gateway_rule, prometheus_rule = policy["spec"]["ingress"]
    assert gateway_rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    admitted = {p["port"] for p in gateway_rule["ports"]}
    for name in ("torchserve", "tfserving"):
        pod_labels = obj(objs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items(), name
    ports = Ports()
    assert admitted == {ports.ts_inference, ports.ts_management, ports.ts_grpc_inference, ports.tf_grpc, ports.tf_rest}
    assert ports.ts_grpc_management not in admitted  # management over gRPC: nobody needs it
    assert prometheus_rule["from"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}


def test_scrape_annotations_match_prometheus_yml(flavour: tuple[Any, list[Any]]) -> None:
    """The annotations name the same port and path as deploy/prometheus/prometheus.yml scrapes under compose."""
    _, objs = flavour
    jobs = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"]
    for job in jobs:
        target = job["static_configs"][0]["targets"][0]
        service, port = target.split(":")
        notes = obj(objs, "Deployment", service)["spec"]["template"]["metadata"]["annotations"]
        assert (notes["prometheus.io/port"], notes["prometheus.io/path"]) == (port, job["metrics_path"]), service


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifacts = REPO / "artifacts"
    if not (artifacts / "manifest.json").is_file():
        pytest.skip("no exported artifacts (make export)")
    out = tmp_path_factory.mktemp("storage")
    lay_out(artifacts, out, progress=lambda _: None)
    return out


def test_storage_layout_for_kserve_torchserve(storage: Path) -> None:
    """config/config.properties + model-store/<model>.mar, with the keys KServe needs and compose's batching."""
    for name in SPECS:
        root = storage / "kserve/torchserve" / name
        props = read_properties(root / "config/config.properties")
        assert props["enable_envvars_config"] == "true"
        assert props["inference_address"] == "http://0.0.0.0:8085"
        assert props["model_store"] == "/mnt/models/model-store"
        snapshot = json.loads(props["model_snapshot"])
        assert snapshot["modelCount"] == 1 and list(snapshot["models"]) == [name]
        (entry,) = snapshot["models"][name].values()
        assert (root / "model-store" / entry["marName"]).is_file()
        per_model = yaml.safe_load((REPO / f"serving/torchserve/model-config/{name}.yaml").read_text())
        for key in ("maxBatchDelay", "minWorkers", "maxWorkers", "responseTimeout"):
            assert entry[key] == per_model[key], key
        assert entry["batchSize"] == 1  # KServe's envelope reads one request per batch (test_kserve_torchserve)
        # Only the KServe copy turns the token off (KServe's front end sends none); the image's file keeps it on.
        base = read_properties(REPO / "serving/torchserve/config.properties")
        assert (props["disable_token_authorization"], base["disable_token_authorization"]) == ("true", "false")
        for key in ("job_queue_size", "max_request_size", "metrics_mode", "enable_model_api"):
            assert props[key] == base[key], key
        plain_mar = storage / "torchserve" / f"{name}.mar"
        assert plain_mar.read_bytes() == (root / "model-store" / f"{name}.mar").read_bytes()


XS = (".json", ".npz")


def test_storage_layout_for_tf_serving(storage: Path) -> None:
    """<model>/<version>/saved_model.pb, plus the batching and monitoring files the isvc args name."""
    for name, spec in SPECS.items():
        root = storage / "tfserving" / name
        assert (root / str(spec.version) / "saved_model.pb").is_file()
        assert read_batching_parameters(root / "batching_parameters.txt") == read_batching_parameters(
            REPO / "serving/tfserving/batching_parameters.txt"
        )
        assert (root / "monitoring.config").read_text() == (REPO / "serving/tfserving/monitoring.config").read_text()
    assert sorted(p.name for p in (storage / "samples").iterdir()) == sorted(f"{m}{x}" for m in SPECS for x in XS)
    # The Locust UI's workers build their classes from manifest.json and check answers against samples/*.npz.
    assert (storage / "manifest.json").read_bytes() == (REPO / "artifacts/manifest.json").read_bytes()


def test_storage_refuses_a_tampered_archive(tmp_path: Path, storage: Path) -> None:
    artifacts = tmp_path / "artifacts"
    manifest = json.loads((REPO / "artifacts/manifest.json").read_text())
    (artifacts / "torchserve").mkdir(parents=True)
    for name, entry in manifest["models"].items():
        (artifacts / entry["torchserve"]["path"]).write_bytes(b"not the archive " + name.encode())
    (artifacts / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="sha256"):
        lay_out(artifacts, tmp_path / "out", progress=lambda _: None)


def test_storage_refuses_a_missing_model(tmp_path: Path, storage: Path) -> None:
    manifest = json.loads((REPO / "artifacts/manifest.json").read_text())
    manifest["models"].pop("resnet18")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="resnet18"):
        lay_out(tmp_path, tmp_path / "out", progress=lambda _: None)
