"""keepvip's user tools: ``keepvip convert``, ``keepvip status``, ``keepvip lab``, ``kubectl keepvip``.

Apart from the daemon so that the agent process never loads a converter or a
table printer, and so that the tools read the API the way any client does:
through the API package (``keepvip_api``) only. The lab is the one exception:
it runs the daemon (``keepvip_agent``) in network namespaces, which is its point.
"""
