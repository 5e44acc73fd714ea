"""`make k8s`: every rendered object validates offline, and the validators do refuse what is wrong."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from deploy.k8s.__main__ import main
from deploy.k8s.render import Options, load_all, render
from deploy.k8s.validate import problems_of, validate_dir
from models.specs import SPECS


def objects(out: Path, **opts: Any) -> list[dict[str, Any]]:
    """Render with `opts` into `out` quietly and read every object back from disk."""
    render(out, Options(**opts), progress=lambda _: None)
    return [o for objs in load_all(out).values() for o in objs]


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


@pytest.mark.parametrize("gpu", [True, False], ids=["gpu", "cpu"])
def test_every_object_validates(tmp_path: Path, gpu: bool) -> None:
    render(tmp_path, Options(gpu=gpu), progress=lambda _: None)
    assert validate_dir(tmp_path) == []


def test_done_means(tmp_path: Path) -> None:
    """InferenceServices for pytorch and tensorflow per model, the gateway with its HPA, distributed Locust."""
    objs = objects(tmp_path, locust_workers=5, gateway_replicas=3, gateway_max_replicas=9)
    isvcs = find(objs, "InferenceService")
    formats = {(o["metadata"]["name"], o["spec"]["predictor"]["model"]["modelFormat"]["name"]) for o in isvcs}
    assert formats == {(m, f) for m in SPECS for f in ("pytorch", "tensorflow")}
    runtimes = {o["spec"]["predictor"]["model"]["runtime"] for o in isvcs}
    assert runtimes == {"kserve-torchserve", "kserve-tensorflow-serving"}
    (hpa,) = find(objs, "HorizontalPodAutoscaler", "gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    (pdb,) = find(objs, "PodDisruptionBudget", "gateway")
    assert (
        pdb["spec"]["selector"]["matchLabels"]
        == find(objs, "Deployment", "gateway")[0]["spec"]["selector"]["matchLabels"]
    )
    assert find(objs, "Deployment", "locust-worker")[0]["spec"]["replicas"] == 5
    assert find(objs, "LocustTest")[0]["spec"]["worker"]["replicas"] == 5


def test_no_key_is_ever_rendered(tmp_path: Path) -> None:
    """TorchServe makes its own keys: the Secret is empty and only the publisher's Role may write it."""
    objs = objects(tmp_path)
    (secret,) = find(objs, "Secret")
    assert secret["data"] == {} and "stringData" not in secret
    (role,) = find(objs, "Role")
    (rule,) = role["rules"]
    assert rule["resources"] == ["secrets"] and rule["resourceNames"] == [secret["metadata"]["name"]]
    assert rule["verbs"] == ["get", "patch"]


def test_rerender_leaves_no_stale_file(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "99-old.yaml").write_text("kind: Stale\n")
    render(tmp_path, Options(), progress=lambda _: None)
    assert not (tmp_path / "plain" / "99-old.yaml").exists()


def test_make_k8s_prints_progress_and_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "--out", str(tmp_path), "--cpu", "--locust-workers", "3"]) == 0
    printed = capsys.readouterr().out
    assert "CPU flavour" in printed and "Deployment/twinserve/gateway" in printed
    assert main(["validate", "--dir", str(tmp_path)]) == 0
    assert main(["validate", "--dir", str(tmp_path / "nothing")]) == 1


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["render", "--out", str(tmp_path), "--locust-workers", "0"])
    with pytest.raises(SystemExit):
        main(["render", "--out", str(tmp_path), "--gateway-replicas", "4", "--gateway-max-replicas", "2"])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return objects(tmp_path_factory.mktemp("k8s"))


def mutated(objs: list[dict[str, Any]], kind: str, name: str, change: Any) -> dict[str, Any]:
    obj = copy.deepcopy(find(objs, kind, name)[0])
    change(obj)
    return obj


def test_strict_core_validation_refuses_an_unknown_field(rendered: list[dict[str, Any]]) -> None:
    bad = mutated(rendered, "Deployment", "gateway", lambda o: o["spec"]["template"]["spec"].update(replica=2))
    assert any("replica" in p for p in problems_of(bad))


def test_core_validation_refuses_a_wrong_type(rendered: list[dict[str, Any]]) -> None:
    bad = mutated(rendered, "HorizontalPodAutoscaler", "gateway", lambda o: o["spec"].update(maxReplicas="many"))
    assert problems_of(bad)


def test_unknown_kind_is_refused() -> None:
    assert "no schema" in problems_of({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "x"}})[0]


def _model(o: dict[str, Any]) -> dict[str, Any]:
    model: dict[str, Any] = o["spec"]["predictor"]["model"]
    return model


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (lambda o: _model(o).update(protocolVersion="v2"), "protocolVersion"),  # TF Serving's runtime has no v2
        (lambda o: _model(o).pop("storageUri"), "storageUri"),
        (lambda o: _model(o).update(storageURI="pvc://x/y"), "storageURI"),
        (lambda o: _model(o)["modelFormat"].update(name="pytorch"), "modelFormat"),
        (lambda o: o["metadata"].update(name="Digits"), "name"),
    ],
)
def test_inference_service_schema_refuses(rendered: list[dict[str, Any]], change: Any, expect: str) -> None:
    tf = next(o for o in find(rendered, "InferenceService") if _model(o)["runtime"] == "kserve-tensorflow-serving")
    bad = copy.deepcopy(tf)
    change(bad)
    problems = problems_of(bad)
    assert problems and any(expect in p for p in problems), problems


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o["spec"]["worker"].update(replicas=0),
        lambda o: o["spec"]["worker"].update(replicas=501),
        lambda o: o["spec"]["master"].pop("command"),
        lambda o: o["spec"].update(workers=2),
        lambda o: o["spec"]["volumeMounts"][0].update(target="everyone"),
    ],
)
def test_locust_test_schema_refuses(rendered: list[dict[str, Any]], change: Any) -> None:
    bad = copy.deepcopy(find(rendered, "LocustTest")[0])
    change(bad)
    assert problems_of(bad)


def test_key_publisher_sends_only_torchserve_key_files() -> None:
    """The sidecar's merge patch carries the key file base64-encoded; anything else is refused, not published."""
    import base64
    import json

    from deploy.k8s.publish_keys import patch_body, secret_url

    key_file = json.dumps({"inference": {"key": "k1"}, "management": {"key": "k2"}, "API": {"key": "k3"}}).encode()
    body = json.loads(patch_body(key_file))
    assert base64.b64decode(body["data"]["key_file.json"]) == key_file
    for bad in (b"{}", b'{"inference": {}}', b"[]"):
        with pytest.raises(ValueError, match="key file"):
            patch_body(bad)
    with pytest.raises(ValueError):
        patch_body(b"half a file {")
    assert secret_url("twinserve", "torchserve-keys", "https://api") == (
        "https://api/api/v1/namespaces/twinserve/secrets/torchserve-keys"
    )


def test_only_the_publisher_holds_api_credentials(tmp_path: Path) -> None:
    """TorchServe runs model code: the pod mounts no API token by default, the publisher gets a projected one."""
    (deploy,) = find(objects(tmp_path), "Deployment", "torchserve")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    mounts = {c["name"]: {m["name"] for m in c["volumeMounts"]} for c in pod["containers"]}
    assert "api-access" in mounts["key-publisher"] and "api-access" not in mounts["torchserve"]
    (api,) = [v for v in pod["volumes"] if v["name"] == "api-access"]
    assert {"serviceAccountToken"} <= {k for s in api["projected"]["sources"] for k in s}
