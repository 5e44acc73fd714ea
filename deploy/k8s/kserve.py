"""KServe InferenceServices (serving.kserve.io/v1beta1), one per model per stack, on KServe's built-in runtimes.

Facts from KServe's documentation this module relies on (the JSON schemas in schemas/ hold the fields):
- `kserve-torchserve` serves modelFormat `pytorch` (protocols v1, v2, grpc-v2). Its storageUri holds
  `config/config.properties` and `model-store/<model>.mar`; the properties need `enable_envvars_config=true`
  (KServe passes the request envelope as TS_SERVICE_ENVELOPE), TorchServe's own inference API on
  `http://0.0.0.0:8085` (KServe's front end takes 8080 and forwards to it) and a `model_snapshot` JSON naming
  the archives to load with their workers and batching.
- `kserve-tensorflow-serving` serves modelFormat `tensorflow` (protocols v1 and grpc-v1, no v2). It runs
  `tensorflow_model_server --model_name=<InferenceService name> --model_base_path=/mnt/models`, so the storageUri
  is the SavedModel base folder with numbered versions, and the InferenceService name is the model name.
- The storage initializer mounts the storageUri at /mnt/models; `pvc://<claim>/<path>` reads a claim of the
  InferenceService's own namespace.
- From KServe's source: a model spec's `args` are appended to the runtime's, and `runtimeVersion` replaces the
  runtime image's tag verbatim (`-gpu` is added only when it is absent), so the GPU flavour names `-gpu` itself.
- `serving.kserve.io/deploymentMode: RawDeployment` makes a plain Deployment + Service (no Knative), which is what
  a NetworkPolicy can reason about.

Because TF Serving names its model after the InferenceService, each stack gets its own namespace and every
InferenceService is named exactly like the model: `<model>` in `twinserve-torchserve` and `twinserve-tfserving`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from deploy.k8s.common import MODEL_PVC, NAMESPACE, PART_OF, PROMETHEUS_LABEL, labels, resources
from deploy.k8s.sources import Model, Sources

TS_NAMESPACE = "twinserve-torchserve"
TF_NAMESPACE = "twinserve-tfserving"
TS_RUNTIME = "kserve-torchserve"
TF_RUNTIME = "kserve-tensorflow-serving"
KSERVE_TS_INFERENCE = 8085
"""TorchServe's own inference address under KServe (KServe's front end listens on 8080 and forwards here)."""
KSERVE_HTTP = 8080
"""The predictor container's HTTP port in both runtimes (TF Serving's --rest_api_port, KServe's front end)."""
KSERVE_TS_BATCH_SIZE = 1
"""TorchServe's batchSize under KServe: its request envelope reads one request per batch (test_kserve_torchserve)."""
MOUNT = "/mnt/models"
"""Where KServe's storage initializer puts the storageUri's contents."""
STORAGE_TS = "kserve/torchserve"
STORAGE_TF = "tfserving"
"""Folders of the models claim (deploy.k8s.storage lays them out); TF's is shared with the plain Deployment."""
# Keys of serving/torchserve/config.properties that KServe's layout decides instead.
_KSERVE_OWNS = {"inference_address", "management_address", "model_store", "load_models"}


def base_image_tag(repo: Path, dockerfile: str) -> str:
    """The tag of a Dockerfile's default BASE_IMAGE (e.g. `2.20.0-gpu`): the release both paths run."""
    match = re.search(r"^ARG BASE_IMAGE=\S+:(\S+)$", (repo / dockerfile).read_text(), flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"{dockerfile}: no `ARG BASE_IMAGE=<image>:<tag>`")
    return match.group(1)


def pinned_release(repo: Path, requirements: str, package: str) -> str:
    """The `<package>==<version>` pin of a requirements file: the release an image we build ourselves runs."""
    match = re.search(rf"^{re.escape(package)}==(\S+)$", (repo / requirements).read_text(), flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"{requirements}: no `{package}==<version>` pin")
    return match.group(1)


def runtime_version(src: Sources, stack: str) -> str:
    """The runtime image tag: the release compose runs (TorchServe: our image's torchserve pin; TF Serving: the
    tag of the image it builds on), `-gpu` only in the GPU flavour."""
    if stack == "torchserve":
        release = pinned_release(src.repo, "serving/torchserve/requirements.txt", "torchserve")
    else:
        release = base_image_tag(src.repo, "serving/tfserving/Dockerfile").removesuffix("-gpu").removesuffix("-cpu")
    return f"{release}-gpu" if src.gpu else release


def torchserve_properties(src: Sources, model: Model) -> str:
    """config/config.properties for one model's TorchServe InferenceService."""
    props = {k: v for k, v in src.torchserve_properties.items() if k not in _KSERVE_OWNS}
    ts = model.torchserve
    snapshot = {
        "name": "startup.cfg",
        "modelCount": 1,
        "models": {
            model.name: {
                # make export archives version <v> as '<v>.0' (gateway setting version_format).
                f"{model.version}.0": {
                    "defaultVersion": True,
                    "marName": f"{model.name}.mar",
                    "minWorkers": ts["minWorkers"],
                    "maxWorkers": ts["maxWorkers"],
                    # TorchServe 0.12.0's KServe envelopes answer only the first request of a batch, so any batch of
                    # two or more fails whole ("number of batch response mismatched", 503): one request per batch.
                    "batchSize": KSERVE_TS_BATCH_SIZE,
                    "maxBatchDelay": ts["maxBatchDelay"],
                    "responseTimeout": ts["responseTimeout"],
                }
            }
        },
    }
    props.update(
        {
            # TorchServe 0.12.0's KServe front end (kubernetes/kserve/kserve_wrapper on kserve 0.13.0's
            # Model._http_predict) posts to /v1/models/<m>:predict (v2: /v2/models/<m>/infer) on this address
            # with no Authorization header, so a token would refuse every request. The front end on 8080 has no
            # auth of its own either; the NetworkPolicy is the boundary on this path.
            "disable_token_authorization": "true",
            "inference_address": f"http://0.0.0.0:{KSERVE_TS_INFERENCE}",
            "management_address": f"http://0.0.0.0:{KSERVE_TS_INFERENCE}",
            "model_store": f"{MOUNT}/model-store",
            "enable_envvars_config": "true",
            "model_snapshot": json.dumps(snapshot, separators=(",", ":")),
        }
    )
    header = (
        f"# TorchServe under KServe ({TS_RUNTIME}) for model {model.name}: rendered by `make k8s-artifacts` from\n"
        "# serving/torchserve/config.properties and serving/torchserve/model-config/; do not edit.\n"
    )
    return header + "".join(f"{k}={v}\n" for k, v in props.items())


def _isvc(name: str, namespace: str, stack: str, model_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**labels(name, "model-server"), "twinserve.io/stack": stack},
            "annotations": {
                "serving.kserve.io/deploymentMode": "RawDeployment",
                "serving.kserve.io/enable-prometheus-scraping": "true",
            },
        },
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1, "model": model_spec}},
    }


def inference_services(src: Sources, max_replicas: int) -> list[dict[str, Any]]:
    """Both stacks' InferenceServices; `max_replicas` > 1 lets KServe's own autoscaler add predictors."""
    out = []
    ts_limits = resources(src.limits("torchserve"), src.gpu_count("torchserve"))
    tf_limits = resources(src.limits("tfserving"), src.gpu_count("tfserving"))
    tf_args = [f"--batching_parameters_file={MOUNT}/batching_parameters.txt", "--enable_batching=true"]
    tf_args.append(f"--monitoring_config_file={MOUNT}/monitoring.config")
    tf_args += [str(a) for a in src.service("tfserving").get("command", [])]  # GPU memory share, as in compose
    for model in src.models:
        ts = _isvc(
            model.name,
            TS_NAMESPACE,
            "torchserve",
            {
                "modelFormat": {"name": "pytorch"},
                "runtime": TS_RUNTIME,
                "runtimeVersion": runtime_version(src, "torchserve"),
                "protocolVersion": "v1",
                "storageUri": f"pvc://{MODEL_PVC}/{STORAGE_TS}/{model.name}",
                "resources": ts_limits,
            },
        )
        tf = _isvc(
            model.name,
            TF_NAMESPACE,
            "tfserving",
            {
                "modelFormat": {"name": "tensorflow", "version": "2"},
                "runtime": TF_RUNTIME,
                "runtimeVersion": runtime_version(src, "tfserving"),
                "protocolVersion": "v1",
                "storageUri": f"pvc://{MODEL_PVC}/{STORAGE_TF}/{model.name}",
                # KServe appends these to the runtime's arguments (model name, ports and base path stay KServe's).
                "args": tf_args,
                "resources": tf_limits,
            },
        )
        tf["metadata"]["annotations"].update(
            {"prometheus.kserve.io/port": str(KSERVE_HTTP), "prometheus.kserve.io/path": src.tf_metrics_path}
        )
        for isvc in (ts, tf):
            isvc["spec"]["predictor"]["maxReplicas"] = max_replicas
        out += [ts, tf]
    return out


_PART_OF_LABEL = {"app.kubernetes.io/part-of": PART_OF}


def namespaces() -> list[dict[str, Any]]:
    """One namespace per stack for the InferenceServices (names equal to model names in both)."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": _PART_OF_LABEL}}
        for ns in (TS_NAMESPACE, TF_NAMESPACE)
    ]


def network_policies() -> list[dict[str, Any]]:
    """In each stack's namespace: only the gateway's pods (namespace twinserve) and Prometheus get in."""
    gateway_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}},
    }
    prometheus_peer = {"namespaceSelector": {}, "podSelector": {"matchLabels": PROMETHEUS_LABEL}}
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "predictors-from-gateway-only", "namespace": ns, "labels": labels(ns, "model-server")},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [gateway_peer, prometheus_peer]}],
            },
        }
        for ns in (TS_NAMESPACE, TF_NAMESPACE)
    ]


def predictor_host(model: str, stack: str) -> str:
    """In-cluster DNS name of a RawDeployment predictor's Service (port 80 -> the container's 8080)."""
    namespace = {"torchserve": TS_NAMESPACE, "tfserving": TF_NAMESPACE}[stack]
    return f"{model}-predictor.{namespace}.svc.cluster.local"
