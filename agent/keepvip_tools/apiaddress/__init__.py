"""A highly available Kubernetes API address: ``keepvip static-pod`` and ``keepvip systemd-unit``.

The generated static Pod or systemd unit runs the standalone agent with a
VirtualIP built from the options (``config``) and checked by the model;
docs/api-address.md is the walk-through.
"""
