"""Small builders shared by every manifest: metadata, labels, hardened containers, probes from compose."""

from __future__ import annotations

import re
from typing import Any

NAMESPACE = "twinserve"
"""The namespace of the gateway, Locust and the plain model servers."""
PART_OF = "twinserve"
MODEL_PVC = "twinserve-models"
"""The claim holding `make k8s-artifacts`' layout (plain Deployments mount it; KServe reads it as pvc://)."""
KEYS_SECRET = "torchserve-keys"
"""The Secret the TorchServe key publisher writes its key file into; rendered empty, never with a key."""
RUN_AS = 10001
"""uid of the TorchServe, gateway and Locust images (Dockerfiles): the key file is readable by that uid only."""
PROMETHEUS_LABEL = {"app.kubernetes.io/name": "prometheus"}
"""Pods with this label may scrape the metrics ports through the NetworkPolicies."""


def labels(name: str, component: str) -> dict[str, str]:
    """The recommended app.kubernetes.io labels."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
    }


def selector(name: str) -> dict[str, str]:
    """The one label selectors match on (stable across label additions)."""
    return {"app.kubernetes.io/name": name}


def meta(name: str, component: str, namespace: str = NAMESPACE, **extra: Any) -> dict[str, Any]:
    """metadata with name, namespace and labels (plus annotations etc. from `extra`)."""
    return {"name": name, "namespace": namespace, "labels": labels(name, component), **extra}


def seconds(duration: str) -> int:
    """Compose durations (`10s`, `3m`, `1m30s`) in whole seconds."""
    parts = re.findall(r"(\d+)(h|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"unsupported compose duration {duration!r}")
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def probes_from_healthcheck(check: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    """startupProbe + readinessProbe with compose's timing: the start period becomes the startup budget."""
    interval, timeout = seconds(check["interval"]), seconds(check["timeout"])
    retries = int(check["retries"])
    startup = max(1, -(-seconds(check.get("start_period", "0s")) // interval)) + retries
    common = {**action, "periodSeconds": interval, "timeoutSeconds": timeout}
    return {
        "startupProbe": {**common, "failureThreshold": startup},
        "readinessProbe": {**common, "failureThreshold": retries},
    }


def exec_action(check: dict[str, Any]) -> dict[str, Any]:
    """A compose `["CMD", ...]` test as a probe's exec action."""
    test = check["test"]
    if not test or test[0] != "CMD":
        raise ValueError(f"healthcheck test must be in exec form ['CMD', ...], got {test!r}")
    return {"exec": {"command": list(test[1:])}}


def hardened(uid: int | None = RUN_AS, read_only_root: bool = False) -> dict[str, Any]:
    """A container securityContext matching compose's `cap_drop: [ALL]` and `no-new-privileges`."""
    ctx: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if uid is not None:
        ctx["runAsUser"] = uid
        ctx["runAsGroup"] = uid
    return ctx


def resources(limits: dict[str, str], gpus: int = 0) -> dict[str, Any]:
    """Requests equal to limits (Guaranteed QoS: both servers get exactly the same share, as in compose)."""
    lim: dict[str, str] = dict(limits)
    if gpus:
        lim["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(lim), "limits": lim}


def scrape_annotations(port: int, path: str) -> dict[str, str]:
    """The conventional prometheus.io annotations that annotation-based scrape configs follow."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": path}


def env_list(env: dict[str, Any]) -> list[dict[str, str]]:
    """A compose environment mapping as a container's env list (values as strings)."""
    return [{"name": k, "value": str(v)} for k, v in env.items()]


def deployment(
    name: str,
    component: str,
    containers: list[dict[str, Any]],
    *,
    replicas: int,
    namespace: str = NAMESPACE,
    volumes: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
    service_account: str | None = None,
    recreate: bool = False,
    fs_group: int | None = RUN_AS,
    automount_token: bool | None = None,
) -> dict[str, Any]:
    """An apps/v1 Deployment with one pod template (API token mounted only with a ServiceAccount, by default)."""
    pod_meta: dict[str, Any] = {"labels": labels(name, component)}
    if annotations:
        pod_meta["annotations"] = annotations
    automount = service_account is not None if automount_token is None else automount_token
    pod: dict[str, Any] = {"containers": containers, "automountServiceAccountToken": automount}
    if fs_group is not None:
        pod["securityContext"] = {"fsGroup": fs_group}
    if service_account:
        pod["serviceAccountName"] = service_account
    if volumes:
        pod["volumes"] = volumes
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": selector(name)},
        "template": {"metadata": pod_meta, "spec": pod},
    }
    if recreate:
        spec["strategy"] = {"type": "Recreate"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, component, namespace), "spec": spec}


def service(name: str, component: str, ports: dict[str, int], namespace: str = NAMESPACE) -> dict[str, Any]:
    """A ClusterIP Service named like the compose service, so in-cluster DNS names equal compose's."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, component, namespace),
        "spec": {
            "selector": selector(name),
            "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in ports.items()],
        },
    }


def container_ports(ports: dict[str, int]) -> list[dict[str, Any]]:
    """containerPort entries, named (names are at most 15 characters)."""
    return [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports.items()]


def keys_volume(mount_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """TorchServe's published key file (the Secret), readable by the shared uid's group only."""
    volume = {"name": "torchserve-keys", "secret": {"secretName": KEYS_SECRET, "defaultMode": 0o440, "optional": True}}
    return volume, {"name": "torchserve-keys", "mountPath": mount_path, "readOnly": True}
