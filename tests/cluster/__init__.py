"""The control-plane tier: a real Kubernetes control plane on loopback.

A package, so that its test modules (``test_chart.py``, ``test_status_view.py``)
cannot collide with another tier's of the same name. The control plane, the
pod launcher and the other helpers are the harness package
(``tests/harness/keepvip_harness``); the fixtures are in ``conftest.py``.
"""
