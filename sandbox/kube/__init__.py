"""Local Kubernetes control plane for tests and the sandbox; see docs/cluster.md."""
