"""A stand-in for the sandbox's DEV_CLUSTER_STATUS hook."""

from types import SimpleNamespace


def building():
    return SimpleNamespace(phase="building", message="compiling kube-apiserver")


def simulated():
    return SimpleNamespace(
        phase="ready", message="", pods_mode="simulated", pods_reason="not running as root"
    )


def real():
    return SimpleNamespace(phase="ready", message="", pods_mode="real", pods_reason="")
