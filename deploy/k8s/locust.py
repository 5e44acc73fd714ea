"""Distributed Locust running twinserve's own locustfile: plain Deployments, or a LocustTest for the operator.

The master and worker arguments are compose's (same Service names: `gateway`, `locust-master`), so a point
run on the cluster writes the same results/point.json as one run with compose.
"""

from __future__ import annotations

from typing import Any

from deploy.k8s.common import (
    MODEL_PVC,
    container_ports,
    deployment,
    hardened,
    keys_volume,
    meta,
    resources,
    service,
)
from deploy.k8s.sources import Sources

MASTER_PORTS = {"web": 8089, "master": 5557}
"""Locust's web UI and master bind port, as compose's `--web-port` and `--master-bind-port` set them."""
WORKDIR = "/app"
"""The loadtest image's working directory (loadtest/Dockerfile)."""


def _mount_target(src: Sources, service_name: str, source: str) -> str:
    """Where compose mounts `source` (a bind path or a volume name) into a service."""
    for vol in src.service(service_name).get("volumes", []):
        if vol["source"] in (source, f"./{source}"):
            return str(vol["target"])
    raise KeyError(f"compose service {service_name} mounts no {source}")


def locust(src: Sources, workers: int) -> list[dict[str, Any]]:
    """Master Deployment + Service (web UI, master port) and a worker Deployment of `workers` replicas."""
    master_cmd = [str(a) for a in src.service("locust-master")["command"]]
    worker_cmd = [str(a) for a in src.service("locust-worker")["command"]]
    samples_at = _mount_target(src, "locust-worker", "artifacts/samples")
    keys_vol, keys_mount = keys_volume(_mount_target(src, "locust-worker", "torchserve-keys"))
    results_at = _mount_target(src, "locust-master", "locust-results")
    master = {
        "name": "locust-master",
        "image": src.image("locust-master"),
        "imagePullPolicy": "IfNotPresent",
        "args": master_cmd,
        "ports": container_ports(MASTER_PORTS),
        "resources": resources(src.limits("locust-master")),
        "securityContext": hardened(),
        "volumeMounts": [{"name": "results", "mountPath": results_at}],
        "readinessProbe": {"httpGet": {"path": "/", "port": MASTER_PORTS["web"]}, "periodSeconds": 10},
    }
    worker = {
        "name": "locust-worker",
        "image": src.image("locust-master"),  # compose builds it once, under the master
        "imagePullPolicy": "IfNotPresent",
        "args": worker_cmd,
        "resources": resources(src.limits("locust-worker")),
        "securityContext": hardened(),
        "volumeMounts": [
            {"name": "models", "mountPath": samples_at, "subPath": "samples", "readOnly": True},
            keys_mount,
        ],
    }
    return [
        deployment(
            "locust-master",
            "load-generator",
            [master],
            replicas=1,
            volumes=[{"name": "results", "emptyDir": {}}],  # survives the master's restart after a run
        ),
        service("locust-master", "load-generator", MASTER_PORTS),
        deployment(
            "locust-worker",
            "load-generator",
            [worker],
            replicas=workers,
            volumes=[{"name": "models", "persistentVolumeClaim": {"claimName": MODEL_PVC, "readOnly": True}}, keys_vol],
        ),
    ]


def locust_test(src: Sources, workers: int) -> dict[str, Any]:
    """The same run as a LocustTest (locust.io/v2) for the Locust Kubernetes operator.

    The operator makes the master and worker Jobs and the master Service itself and adds the
    master/worker flags, so the command seeds carry only twinserve's own arguments.
    """
    own = ("--master", "--worker", "--web-port", "--master-bind-port", "--master-host", "--master-port")
    master_args = [a for a in src.service("locust-master")["command"] if not str(a).startswith(own)]
    worker_args = [a for a in src.service("locust-worker")["command"] if not str(a).startswith(own)]
    samples_at = _mount_target(src, "locust-worker", "artifacts/samples")
    seed = "--locustfile loadtest/locustfile.py "
    return {
        "apiVersion": "locust.io/v2",
        "kind": "LocustTest",
        "metadata": meta("twinserve-point", "load-generator"),
        "spec": {
            "image": src.image("locust-master"),
            "imagePullPolicy": "IfNotPresent",
            "master": {
                "command": seed + " ".join(str(a) for a in master_args),
                "resources": resources(src.limits("locust-master")),
                # Started from the web UI, as with compose; the operator would otherwise start at once.
                "autostart": False,
            },
            "worker": {
                "command": seed + " ".join(str(a) for a in worker_args),
                "replicas": workers,
                "resources": resources(src.limits("locust-worker")),
            },
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": MODEL_PVC, "readOnly": True}}],
            "volumeMounts": [
                {"name": "models", "mountPath": samples_at, "subPath": "samples", "readOnly": True, "target": "worker"}
            ],
        },
    }
