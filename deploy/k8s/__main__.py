"""`python -m deploy.k8s render|artifacts|validate`: manifests, model storage layout, offline validation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.k8s.render import Options, load_all, render


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="python -m deploy.k8s", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="write the manifests")
    r.add_argument("--out", type=Path, default=Path("build/k8s"))
    r.add_argument("--cpu", action="store_true", help="CPU flavour: compose's CPU image tags, no GPU requests")
    r.add_argument("--gateway-replicas", type=int, default=Options.gateway_replicas, help="and the HPA's floor")
    r.add_argument("--gateway-max-replicas", type=int, default=Options.gateway_max_replicas)
    r.add_argument("--gateway-cpu-target", type=int, default=Options.gateway_cpu_target, help="HPA CPU %% target")
    r.add_argument("--locust-workers", type=int, default=Options.locust_workers)
    r.add_argument("--tfserving-replicas", type=int, default=Options.tfserving_replicas)
    r.add_argument("--kserve-max-replicas", type=int, default=Options.kserve_max_replicas)
    r.add_argument("--storage-size", default=Options.storage_size, help="size of the models claim")
    a = sub.add_parser("artifacts", help="lay out artifacts/ as the model storage both runtimes expect")
    a.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    a.add_argument("--out", type=Path, default=Path("build/k8s-storage"))
    v = sub.add_parser("validate", help="check rendered manifests offline (kubernetes-validate + our CRD schemas)")
    v.add_argument("--dir", type=Path, default=Path("build/k8s"))
    args = parser.parse_args(argv)

    if args.command == "render":
        for flag in ("gateway_replicas", "gateway_max_replicas", "locust_workers", "tfserving_replicas"):
            if getattr(args, flag) < 1:
                parser.error(f"--{flag.replace('_', '-')} must be at least 1")
        if args.gateway_max_replicas < args.gateway_replicas:
            parser.error("--gateway-max-replicas must be at least --gateway-replicas")
        opt = Options(
            gpu=not args.cpu,
            gateway_replicas=args.gateway_replicas,
            gateway_max_replicas=args.gateway_max_replicas,
            gateway_cpu_target=args.gateway_cpu_target,
            locust_workers=args.locust_workers,
            tfserving_replicas=args.tfserving_replicas,
            kserve_max_replicas=args.kserve_max_replicas,
            storage_size=args.storage_size,
        )
        print(f"rendering Kubernetes manifests ({'GPU' if opt.gpu else 'CPU'} flavour) into {args.out}/")
        written = render(args.out, opt)
        print(f"{sum(len(o) for o in written.values())} objects in {len(written)} files; apply with:")
        print(f"  kubectl apply -f {args.out}/base -f {args.out}/plain     # without KServe")
        print(f"  kubectl apply -f {args.out}/base -f {args.out}/kserve    # with KServe: docs/kubernetes.md")
        return 0
    if args.command == "artifacts":
        from deploy.k8s.storage import lay_out

        lay_out(args.artifacts, args.out)
        return 0
    from deploy.k8s.validate import validate_dir

    problems = validate_dir(args.dir)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        count = sum(len(objs) for objs in load_all(args.dir).values())
        print(f"{count} objects valid: core kinds with kubernetes-validate --strict, CRDs with deploy/k8s/schemas/")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
