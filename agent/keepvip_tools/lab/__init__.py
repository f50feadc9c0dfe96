"""The lab: N nodes and a client in network namespaces on one bridge.

Used by ``keepvip lab``, the network-namespace tests and the benchmarks, so
all three exercise the same topology. Only documentation addresses are used
and the bridge lives in a namespace of its own: nothing on the host changes.
"""
