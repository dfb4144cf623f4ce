"""The sandbox's pod agent (the kubelet of the local cluster's kwok nodes): ``python -m sandbox.kube.agent``.

See docs/sandbox.md. The container runtime it drives lives beside it (runtime and its modules).
"""
