"""``keepvip status``: who holds each VIP, who is next, and since when, in one table.

keepalived users have to ssh to each host and read logs to find the master;
keepvip publishes it (agents write ``status.nodes[]`` of each VirtualIP,
standalone agents serve ``/status``). This package only reads and shows it:
:mod:`~.sources` fetches, :mod:`~.model` normalizes both shapes into rows,
:mod:`~.render` prints them, :mod:`~.command` is the command line.
"""
