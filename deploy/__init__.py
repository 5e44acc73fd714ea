"""Deployment assets; `deploy.k8s` renders the Kubernetes manifests (the rest are files containers mount)."""
