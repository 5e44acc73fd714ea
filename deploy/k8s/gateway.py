"""The gateway: Deployment, Service, HorizontalPodAutoscaler (CPU), PodDisruptionBudget and its routes.

The routes ConfigMap belongs to the serving flavour, not to base/: plain/ carries gateway/routes.yaml as is (the
stacks' Services, as in compose), kserve/ the same routes with each model's own InferenceService hosts.
"""

from __future__ import annotations

import re
from typing import Any

import yaml  # type: ignore[import-untyped]

from deploy.k8s.common import (
    container_ports,
    deployment,
    env_list,
    hardened,
    keys_volume,
    meta,
    resources,
    scrape_annotations,
    seconds,
    selector,
    service,
)
from deploy.k8s.kserve import predictor_host
from deploy.k8s.sources import Sources

ROUTES_DIR = "/etc/twinserve"
"""Where the routes ConfigMap is mounted; TWINSERVE_ROUTES_FILE points into it."""


def gateway_env(src: Sources) -> dict[str, str]:
    """Compose's gateway environment (same Service names, so the same URLs) plus the mounted routes file."""
    env = {k: str(v) for k, v in src.service("gateway")["environment"].items()}
    env["TWINSERVE_ROUTES_FILE"] = f"{ROUTES_DIR}/routes.yaml"
    return env


def health_path(src: Sources) -> tuple[int, str]:
    """Port and path compose's gateway healthcheck fetches (its test is a Python one-liner)."""
    test = " ".join(src.healthcheck("gateway")["test"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/.-]+)", test)
    if match is None:
        raise ValueError(f"cannot find the health URL in compose's gateway healthcheck {test!r}")
    return int(match.group(1)), match.group(2)


def gateway(src: Sources, replicas: int, max_replicas: int, cpu_target: int) -> list[dict[str, Any]]:
    """Every gateway object; `replicas` is also the autoscaler's floor."""
    svc = src.service("gateway")
    check = src.healthcheck("gateway")
    port, ready_path = health_path(src)
    ports = {"http": src.ports.gateway_rest, "grpc": src.ports.gateway_grpc}
    keys_vol, keys_mount = keys_volume(str(_key_dir(gateway_env(src))))
    timing = {"periodSeconds": seconds(check["interval"]), "timeoutSeconds": seconds(check["timeout"])}
    start = -(-seconds(check["start_period"]) // timing["periodSeconds"]) + int(check["retries"])
    container = {
        "name": "gateway",
        "image": src.image("gateway"),
        "imagePullPolicy": "IfNotPresent",
        "env": env_list(gateway_env(src)),
        "ports": container_ports(ports),
        "resources": resources(src.limits("gateway")),
        "securityContext": hardened(read_only_root=bool(svc.get("read_only"))),
        "volumeMounts": [
            keys_mount,
            {"name": "routes", "mountPath": ROUTES_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "startupProbe": {"httpGet": {"path": ready_path, "port": port}, **timing, "failureThreshold": start},
        "readinessProbe": {"httpGet": {"path": ready_path, "port": port}, **timing, "failureThreshold": 1},
        # Live, not ready: a gateway whose backends are down is still alive and must not be restarted for it.
        "livenessProbe": {
            "httpGet": {"path": ready_path.replace("/ready", "/live"), "port": port},
            **timing,
            "failureThreshold": int(check["retries"]),
        },
    }
    volumes = [
        keys_vol,
        {"name": "routes", "configMap": {"name": "gateway-routes"}},
        {"name": "tmp", "emptyDir": {"medium": "Memory"}},  # compose: read_only with a tmpfs on /tmp
    ]
    deploy = deployment(
        "gateway",
        "gateway",
        [container],
        replicas=replicas,
        volumes=volumes,
        annotations=scrape_annotations(src.ports.gateway_rest, "/metrics"),
    )
    return [
        deploy,
        service("gateway", "gateway", ports),
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta("gateway", "gateway"),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"},
                "minReplicas": replicas,
                "maxReplicas": max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": cpu_target},
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta("gateway", "gateway"),
            "spec": {"minAvailable": max(1, replicas - 1), "selector": {"matchLabels": selector("gateway")}},
        },
    ]


def routes_config_map(text: str) -> dict[str, Any]:
    """The ConfigMap the gateway mounts as its routes file."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("gateway-routes", "gateway"),
        "data": {"routes.yaml": text},
    }


def kserve_routes(src: Sources) -> str:
    """gateway/routes.yaml with, per model, its InferenceService hosts as the endpoints of both stacks.

    TorchServe behind kserve-torchserve is reached with KServe's v1 protocol (protocolVersion v1, which the
    handler answers with named outputs); kserve-tensorflow-serving runs TF Serving itself, whose own REST API
    the predictor Service exposes (port 80 -> 8080), so the TF client speaks `rest` to it.
    """
    routes = yaml.safe_load(src.routes_text)
    for name, route in routes["models"].items():
        route["endpoints"] = {
            "torchserve": {"protocol": "kserve-v1", "rest_url": f"http://{predictor_host(name, 'torchserve')}"},
            "tfserving": {"protocol": "rest", "rest_url": f"http://{predictor_host(name, 'tfserving')}"},
        }
    header = (
        "# gateway/routes.yaml for the KServe flavour: each model on its own InferenceService hosts\n"
        "# (rendered by `make k8s` from gateway/routes.yaml; validated by gateway/settings.py: Route).\n"
    )
    return header + yaml.safe_dump(routes, sort_keys=False, width=120)


def _key_dir(env: dict[str, str]) -> str:
    """The folder of the key file the gateway reads (compose: the shared key volume's mount point)."""
    key_file = env["TWINSERVE_BACKENDS__TORCHSERVE__KEY_FILE"]
    return key_file.rsplit("/", 1)[0]
