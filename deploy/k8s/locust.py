"""Distributed Locust with twinserve's web UI: plain Deployments, or a LocustTest for the Locust operator.

The commands come from loadtest/ui/launch.py, the one source compose's locust-master and locust-worker follow:
the Deployments run `python -m loadtest.webui` with its container arguments; the operator runs the image's
ENTRYPOINT (`locust -f loadtest/ui/locustfile.py`) with the same Locust arguments less the role flags, which it
adds itself. Services are found by name on the contract ports (the Services are named as compose's), the models
from `manifest.json` and `samples/` on the models claim. The master saves each UI run in /app/results/in-compose
(the path compose bind-mounts; here an emptyDir to copy out with `kubectl cp`).
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
from loadtest.ui import launch

MASTER_PORTS = {"web": launch.WEB_PORT, "master": launch.MASTER_PORT}
"""Locust's web UI and the port workers connect to (loadtest/ui/launch.py)."""
MODELS = {"name": "models", "persistentVolumeClaim": {"claimName": MODEL_PVC, "readOnly": True}}


def models_mounts(**extra: str) -> list[dict[str, Any]]:
    """manifest.json and samples/ from the models claim (`make k8s-artifacts` lays them out) where every role
    builds its classes from them."""
    return [
        {"name": "models", "mountPath": f"{launch.ARTIFACTS}/{part}", "subPath": part, "readOnly": True, **extra}
        for part in ("manifest.json", "samples")
    ]


def locust(src: Sources, workers: int) -> list[dict[str, Any]]:
    """Master Deployment + Service (web UI, master port) and a worker Deployment of `workers` replicas."""
    keys_vol, keys_mount = keys_volume(launch.KEYS)
    master = {
        "name": "locust-master",
        "image": src.image("locust-master"),
        "imagePullPolicy": "IfNotPresent",
        "command": list(launch.LAUNCHER),
        "args": launch.container_args("master"),
        "ports": container_ports(MASTER_PORTS),
        "resources": resources(src.limits("locust-master")),
        "securityContext": hardened(),
        "volumeMounts": [*models_mounts(), {"name": "results", "mountPath": f"{launch.WORKDIR}/{launch.RESULTS}"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": MASTER_PORTS["web"]}, "periodSeconds": 10},
    }
    worker = {
        "name": "locust-worker",
        "image": src.image("locust-master"),  # compose builds it once, under the master
        "imagePullPolicy": "IfNotPresent",
        "command": list(launch.LAUNCHER),
        "args": launch.container_args("worker", master_host=launch.MASTER_SERVICE),
        "resources": resources(src.limits("locust-worker")),
        "securityContext": hardened(),
        "volumeMounts": [*models_mounts(), keys_mount],
    }
    return [
        deployment(
            "locust-master",
            "load-generator",
            [master],
            replicas=1,
            volumes=[MODELS, {"name": "results", "emptyDir": {}}],  # survives a restart of the container
        ),
        service("locust-master", "load-generator", MASTER_PORTS),
        deployment("locust-worker", "load-generator", [worker], replicas=workers, volumes=[MODELS, keys_vol]),
    ]


def locust_test(src: Sources, workers: int) -> dict[str, Any]:
    """The same UI as a LocustTest (locust.io/v2) for the Locust Kubernetes operator.

    The operator makes the master and worker Jobs and the master Service itself and adds the master/worker
    flags to the image's ENTRYPOINT, so the command seeds carry only twinserve's own arguments, and the
    TWINSERVE_* variables the launcher would set come as the test's environment.
    """
    keys_vol, keys_mount = keys_volume(launch.KEYS)
    env = launch.container_env("master")  # the workers' are the same: the same classes
    return {
        "apiVersion": "locust.io/v2",
        "kind": "LocustTest",
        "metadata": meta("twinserve-ui", "load-generator"),
        "spec": {
            "image": src.image("locust-master"),
            "imagePullPolicy": "IfNotPresent",
            "master": {
                "command": " ".join(launch.operator_seed("master")),
                "resources": resources(src.limits("locust-master")),
                # Started from the web UI, as with compose; the operator would otherwise start at once.
                "autostart": False,
                # A UI serves until it is stopped; --autoquit would end it a minute after the first run.
                "autoquit": {"enabled": False},
            },
            "worker": {
                "command": " ".join(launch.operator_seed("worker")),
                "replicas": workers,
                "resources": resources(src.limits("locust-worker")),
            },
            "env": {"variables": [{"name": k, "value": v} for k, v in env.items()]},
            "volumes": [MODELS, keys_vol],
            "volumeMounts": [*models_mounts(target="both"), {**keys_mount, "target": "worker"}],
        },
    }
