"""Kubernetes manifests for twinserve, rendered from the same sources as compose and the native stack.

`python -m deploy.k8s render` writes build/k8s/; `python -m deploy.k8s artifacts` lays out the model storage
that KServe's runtimes and the plain Deployments mount. Nothing here talks to a cluster.
"""
