"""Render every manifest into build/k8s/<part>/*.yaml: plain dicts, dumped as multi-document YAML.

base/      namespace, model storage claim, gateway (+ HPA, PDB), distributed Locust
plain/     TorchServe and TF Serving as Deployments (clusters without KServe), token Secret, NetworkPolicy, and
           the gateway's routes pointing at their Services
kserve/    one InferenceService per model per stack on KServe's runtimes, their namespaces and NetworkPolicies,
           and the gateway's routes pointing at each model's InferenceService hosts
operator/  the same Locust run as a LocustTest, for clusters with the Locust operator (instead of base/'s)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from deploy.k8s import gateway, kserve, locust, plain
from deploy.k8s.common import NAMESPACE
from deploy.k8s.sources import Sources

HEADER = "# Rendered by `make k8s` (python -m deploy.k8s render) from the repository's sources; do not edit.\n"


@dataclass(frozen=True)
class Options:
    """The knobs of one rendering; defaults mirror compose's."""

    gpu: bool = True
    gateway_replicas: int = 2
    gateway_max_replicas: int = 8
    gateway_cpu_target: int = 70
    """Average CPU utilisation (% of requests) the autoscaler aims for."""
    locust_workers: int = 2
    tfserving_replicas: int = 1
    kserve_max_replicas: int = 1
    storage_size: str = "20Gi"


def files(src: Sources, opt: Options) -> dict[str, list[dict[str, Any]]]:
    """Relative file name -> the objects it holds, in apply order."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    return {
        "base/00-namespace.yaml": [namespace, plain.model_claim(opt.storage_size)],
        "base/20-gateway.yaml": gateway.gateway(
            src, opt.gateway_replicas, opt.gateway_max_replicas, opt.gateway_cpu_target
        ),
        "base/30-locust.yaml": locust.locust(src, opt.locust_workers),
        "plain/05-gateway-routes.yaml": [gateway.routes_config_map(src.routes_text)],
        "plain/10-torchserve.yaml": plain.torchserve(src),
        "plain/20-tfserving.yaml": plain.tfserving(src, opt.tfserving_replicas),
        "plain/30-network-policy.yaml": [plain.network_policy(src)],
        # A pvc:// storageUri names a claim in the InferenceService's own namespace: one per stack namespace.
        "kserve/00-namespaces.yaml": [
            *kserve.namespaces(),
            *(plain.model_claim(opt.storage_size, ns) for ns in (kserve.TS_NAMESPACE, kserve.TF_NAMESPACE)),
        ],
        "kserve/10-inference-services.yaml": kserve.inference_services(src, opt.kserve_max_replicas),
        "kserve/20-network-policies.yaml": kserve.network_policies(),
        "kserve/30-gateway-routes.yaml": [gateway.routes_config_map(gateway.kserve_routes(src))],
        "operator/locust-test.yaml": [locust.locust_test(src, opt.locust_workers)],
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (routes.yaml, the publisher script) as literal blocks; no &anchors, every value inline."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(objects: list[dict[str, Any]]) -> str:
    """Objects as one multi-document YAML text (keys in the order they were built)."""
    return HEADER + "".join("---\n" + yaml.dump(o, Dumper=_Dumper, sort_keys=False, width=120) for o in objects)


def render(out: Path, opt: Options, progress: Callable[[str], None] = print) -> dict[Path, list[dict[str, Any]]]:
    """Write every file under `out` (emptied first, so no stale manifest survives); return path -> objects."""
    src = Sources(gpu=opt.gpu)
    written: dict[Path, list[dict[str, Any]]] = {}
    if out.exists():
        for old in sorted(out.rglob("*.yaml")):
            old.unlink()
    for name, objects in files(src, opt).items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(objects))
        kinds = ", ".join(f"{o['kind']}/{o['metadata'].get('namespace', '-')}/{o['metadata']['name']}" for o in objects)
        progress(f"  {path}: {kinds}")
        written[path] = objects
    return written


def load_all(out: Path) -> dict[Path, list[dict[str, Any]]]:
    """Read rendered files back (what a validator or a test sees)."""
    return {p: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in sorted(out.rglob("*.yaml"))}
