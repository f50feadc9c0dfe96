"""The agent's Kubernetes mode: configuration, peers, pod readiness, status and arbitration from the API.

Everything here is an adapter around the same engine as standalone mode
(:class:`keepvip_agent.runtime.agent.Agent`). The API is never on the data
path: VRRP keeps running on the last known configuration and peers when the
API server is slow or down, and status catches up when it returns.
"""
