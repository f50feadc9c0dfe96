"""keepvip operator: reconciles VirtualIPs into agent DaemonSets and aggregates their status."""
