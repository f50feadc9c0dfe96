"""The control-plane tier: a real Kubernetes control plane on loopback.

A package, so that its helper modules (``cluster.rest``, ``cluster.procs``,
...) cannot collide with another tier's modules of the same name.
``controlplane.py`` is the entry point; ``podlauncher.py`` runs labelled
pods for real in node network namespaces.
"""
