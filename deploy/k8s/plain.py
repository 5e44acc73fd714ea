"""Model servers without KServe: twinserve's own TorchServe and TF Serving images, as compose runs them.

The Services are named `torchserve` and `tfserving` like the compose services, so the gateway's environment
(TWINSERVE_BACKENDS__*) is compose's, unchanged. TorchServe's token stays on: a sidecar publishes the key file
TorchServe writes into the `torchserve-keys` Secret, which the gateway and the Locust workers mount.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contract import tskeys
from deploy.k8s.common import (
    KEYS_SECRET,
    MODEL_PVC,
    NAMESPACE,
    PROMETHEUS_LABEL,
    container_ports,
    deployment,
    exec_action,
    hardened,
    meta,
    probes_from_healthcheck,
    resources,
    scrape_annotations,
    seconds,
    selector,
    service,
)
from deploy.k8s.sources import Sources

PUBLISHER = Path(__file__).with_name("publish_keys.py")
TS_HOME = "/home/model-server"
TS_KEYS_DIR = f"{TS_HOME}/keys"
"""TorchServe's working directory in its image, where it writes its key file (serving/torchserve/Dockerfile)."""
ACCOUNT_DIR = "/var/run/twinserve/api"
"""Where the publisher (only) finds its projected ServiceAccount token and the cluster CA."""
TF_UID = 10002
"""The TF Serving image's user (serving/tfserving/Dockerfile)."""


def torchserve_ports(src: Sources) -> dict[str, int]:
    """TorchServe's contract ports, named."""
    p = src.ports
    return {
        "http": p.ts_inference,
        "management": p.ts_management,
        "metrics": p.ts_metrics,
        "grpc": p.ts_grpc_inference,
        "grpc-management": p.ts_grpc_management,
    }


def tfserving_ports(src: Sources) -> dict[str, int]:
    """TF Serving's contract ports, named."""
    return {"grpc": src.ports.tf_grpc, "http": src.ports.tf_rest}


def torchserve(src: Sources) -> list[dict[str, Any]]:
    """TorchServe (all models, one replica: its keys are per process) + key publisher + Service + RBAC."""
    svc = src.service("torchserve")
    check = src.healthcheck("torchserve")
    keys_mount = {"name": "keys", "mountPath": TS_KEYS_DIR}
    server = {
        "name": "torchserve",
        "image": src.image("torchserve"),
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": k, "value": str(v)} for k, v in svc.get("environment", {}).items()],
        "ports": container_ports(torchserve_ports(src)),
        "resources": resources(src.limits("torchserve"), src.gpu_count("torchserve")),
        "securityContext": hardened(),
        "volumeMounts": [
            {"name": "models", "mountPath": f"{TS_HOME}/model-store", "subPath": "torchserve", "readOnly": True},
            keys_mount,
        ],
        # No livenessProbe: compose does not restart an unhealthy TorchServe either (a slow ping under load
        # must not kill the server being measured).
        **probes_from_healthcheck(check, exec_action(check)),
    }
    publisher = {
        "name": "key-publisher",
        "image": src.image("torchserve"),  # its python3 runs the stdlib-only publisher; no other image is pulled
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "/opt/twinserve/publish_keys.py"],
        "env": [
            {"name": "KEY_FILE", "value": f"{TS_KEYS_DIR}/{tskeys.FILE_NAME}"},
            {"name": "SECRET_NAME", "value": KEYS_SECRET},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "ACCOUNT_DIR", "value": ACCOUNT_DIR},
        ],
        "resources": resources({"cpu": "50m", "memory": "64Mi"}),
        "securityContext": hardened(read_only_root=True),
        "volumeMounts": [
            {**keys_mount, "readOnly": True},
            {"name": "publisher", "mountPath": "/opt/twinserve", "readOnly": True},
            {"name": "api-access", "mountPath": ACCOUNT_DIR, "readOnly": True},
        ],
    }
    volumes = [
        {"name": "models", "persistentVolumeClaim": {"claimName": MODEL_PVC, "readOnly": True}},
        # In memory only, like compose's tmpfs key volume.
        {"name": "keys", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {"name": "publisher", "configMap": {"name": "torchserve-key-publisher"}},
        # The API token only in the publisher: TorchServe runs model code and gets no API credentials.
        {
            "name": "api-access",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                ]
            },
        },
    ]
    grace = seconds_or_none(svc.get("stop_grace_period"))
    deploy = deployment(
        "torchserve",
        "model-server",
        [server, publisher],
        replicas=1,
        volumes=volumes,
        annotations=scrape_annotations(src.ports.ts_metrics, "/metrics"),
        service_account="torchserve-key-publisher",
        automount_token=False,
        recreate=True,  # two pods would mean two key sets behind one Service
    )
    if grace:
        deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = grace
    return [
        *key_objects(),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("torchserve-key-publisher", "model-server"),
            "data": {"publish_keys.py": PUBLISHER.read_text()},
        },
        deploy,
        service("torchserve", "model-server", torchserve_ports(src)),
    ]


def key_objects() -> list[dict[str, Any]]:
    """The empty Secret, and the ServiceAccount allowed to update that one Secret and nothing else."""
    sa = "torchserve-key-publisher"
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta(KEYS_SECRET, "model-server"),
            "type": "Opaque",
            # Deliberately empty: TorchServe makes its own keys at start; the publisher fills this in.
            "data": {},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(sa, "model-server")},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(sa, "model-server"),
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [KEYS_SECRET], "verbs": ["get", "patch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(sa, "model-server"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}],
        },
    ]


def tfserving(src: Sources, replicas: int) -> list[dict[str, Any]]:
    """TF Serving with models.config and batching baked into twinserve's image, SavedModels from the claim."""
    svc = src.service("tfserving")
    check = src.healthcheck("tfserving")
    server: dict[str, Any] = {
        "name": "tfserving",
        "image": src.image("tfserving"),
        "imagePullPolicy": "IfNotPresent",
        "ports": container_ports(tfserving_ports(src)),
        "resources": resources(src.limits("tfserving"), src.gpu_count("tfserving")),
        "securityContext": hardened(uid=TF_UID),
        "volumeMounts": [{"name": "models", "mountPath": "/models", "subPath": "tfserving", "readOnly": True}],
        **probes_from_healthcheck(check, exec_action(check)),
    }
    if svc.get("command"):
        server["args"] = list(svc["command"])  # compose's `command` is appended to the image's ENTRYPOINT
    deploy = deployment(
        "tfserving",
        "model-server",
        [server],
        replicas=replicas,
        volumes=[{"name": "models", "persistentVolumeClaim": {"claimName": MODEL_PVC, "readOnly": True}}],
        annotations=scrape_annotations(src.ports.tf_rest, src.tf_metrics_path),
        fs_group=None,
    )
    grace = seconds_or_none(svc.get("stop_grace_period"))
    if grace:
        deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = grace
    return [deploy, service("tfserving", "model-server", tfserving_ports(src))]


def network_policy(src: Sources) -> dict[str, Any]:
    """Only the gateway reaches the model servers' serving ports; Prometheus reaches the metrics ports."""
    serving = [src.ports.ts_inference, src.ports.ts_management, src.ports.ts_grpc_inference, src.ports.tf_grpc]
    serving.append(src.ports.tf_rest)
    metrics = [src.ports.ts_metrics, src.ports.tf_rest]  # TF Serving's metrics share its REST port
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("model-servers-from-gateway-only", "model-server"),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "model-server"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": selector("gateway")}}],
                    "ports": [{"protocol": "TCP", "port": p} for p in serving],
                },
                {
                    "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": PROMETHEUS_LABEL}}],
                    "ports": [{"protocol": "TCP", "port": p} for p in metrics],
                },
            ],
        },
    }


def model_claim(size: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The claim `make k8s-artifacts`' layout is copied into (ReadWriteMany: every replica mounts it)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(MODEL_PVC, "storage", namespace),
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}}},
    }


def seconds_or_none(duration: str | None) -> int | None:
    """A compose duration in seconds, or None when unset."""
    return seconds(duration) if duration else None
