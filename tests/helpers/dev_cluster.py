"""A stand-in for the sandbox's DEV_CLUSTER_STATUS hook."""

from types import SimpleNamespace


def building():
    return SimpleNamespace(phase="building", message="compiling kube-apiserver")
