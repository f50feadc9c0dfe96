"""The keepalived keywords the converter knows but does not translate, and what it tells the user.

A keyword absent from both these tables and the reader's handlers is
unknown, and an unknown keyword is an error: keepalived itself only logs
"Unknown keyword" and carries on, which is how typos like ``priorty`` live
for years. Keywords listed here were checked against keepalived 2.2.7's
vocabulary; each maps to the reason it is not converted. NOTE means the
keyword does not change which node holds the VIP (process tuning, e-mail,
SNMP); UNSUPPORTED means it changes behaviour that keepvip does not have,
so the output differs from the input in a way the user must judge.
"""

from __future__ import annotations

from keepvip_tools.convert.errors import Severity

NOTE, UNSUPPORTED = Severity.NOTE, Severity.UNSUPPORTED

PROCESS = "tunes the keepalived process itself; keepvip has no equivalent"
EMAIL = "keepvip sends no e-mail: alert on its metrics or Kubernetes events instead"
LVS = "LVS/IPVS load balancing is not part of keepvip (it moves addresses only)"
SNMP = "keepvip exposes Prometheus metrics and /status instead of SNMP, D-Bus or FIFOs"
FIREWALL = "keepvip installs no firewall rules: traffic to a VIP is always accepted"
SCRIPTS = "keepvip runs checks and hooks as the agent's own user"
GARP = "keepvip announces on becoming master (announce.count, announce.interval) and every announce.refresh"
STATIC = "keepvip manages only the VIPs: keep static addresses, routes and rules in the host's network configuration"
TRACKERS = (
    "keepvip checks are tcpSocket, httpGet, exec and link; express this as an exec check by hand"
)

Reason = tuple[Severity, str]

TOP_LEVEL: dict[str, Reason] = {
    "virtual_server": (UNSUPPORTED, LVS),
    "virtual_server_group": (UNSUPPORTED, LVS),
    "static_ipaddress": (UNSUPPORTED, STATIC),
    "static_routes": (UNSUPPORTED, STATIC),
    "static_rules": (UNSUPPORTED, STATIC),
    "vrrp_track_file": (UNSUPPORTED, TRACKERS),
    "track_file": (UNSUPPORTED, TRACKERS),
    "vrrp_track_process": (UNSUPPORTED, TRACKERS),
    "track_process": (UNSUPPORTED, TRACKERS),
    "bfd_instance": (UNSUPPORTED, TRACKERS),
    "garp_group": (NOTE, GARP),
    "linkbeat_interfaces": (NOTE, PROCESS),
    "net_namespace": (NOTE, PROCESS),
    "net_namespace_ipvs": (NOTE, LVS),
    "namespace_with_ipsets": (NOTE, PROCESS),
    "instance": (NOTE, PROCESS),
    "use_pid_dir": (NOTE, PROCESS),
}

_PROCESS_GLOBALS = """
    max_auto_priority min_auto_priority_delay vrrp_priority checker_priority bfd_priority
    vrrp_no_swap checker_no_swap bfd_no_swap vrrp_rt_priority checker_rt_priority
    bfd_rt_priority vrrp_rlimit_rtime vrrp_rlimit_rttime checker_rlimit_rttime
    bfd_rlimit_rttime vrrp_cpu_affinity checker_cpu_affinity bfd_cpu_affinity process_names
    process_name vrrp_process_name checker_process_name bfd_process_name umask
    child_wait_time random_seed use_pid_dir instance net_namespace namespace_with_ipsets
    dynamic_interfaces vrrp_netlink_cmd_rcv_bufs vrrp_netlink_cmd_rcv_bufs_force
    vrrp_netlink_monitor_rcv_bufs vrrp_netlink_monitor_rcv_bufs_force vrrp_rx_bufs_policy
    vrrp_rx_bufs_multiplier vrrp_startup_delay vrrp_min_garp vrrp_garp_extra_if
    vrrp_down_timer_adverts reload_time_file reload_repeat startup_script
    startup_script_timeout shutdown_script shutdown_script_timeout disable_local_igmp
    linkbeat_use_polling vmac_prefix vmac_addr_prefix vrrp_skip_check_adv_addr
    vrrp_check_unicast_src vrrp_lower_prio_no_advert vrrp_higher_prio_send_advert
    vrrp_garp_lower_prio_delay vrrp_garp_lower_prio_repeat vrrp_garp_master_refresh_repeat
    fifo_write_vrrp_states_on_reload vrrp_own_all_if_ipaddr data_use_instance
    remove_ipvs_config_on_exit json_version log_unknown_vrids
    checker_log_all_failures checker_process_priority vrrp_process_priority
"""
_EMAIL_GLOBALS = """
    notification_email notification_email_from smtp_server smtp_connect_timeout
    smtp_helo_name smtp_alert smtp_alert_vrrp smtp_alert_checker no_email_faults
    email_faults no_checker_emails
"""
_LVS_GLOBALS = """
    lvs_id lvs_sync_daemon lvs_flush lvs_flush_onstop lvs_timeouts lvs_netlink_cmd_rcv_bufs
    lvs_netlink_cmd_rcv_bufs_force lvs_netlink_monitor_rcv_bufs
    lvs_netlink_monitor_rcv_bufs_force lvs_notify_fifo lvs_notify_fifo_script
    rs_init_notifies checker_cpu_affinity ipvs_process_name
"""
_SNMP_GLOBALS = """
    dbus_service_name enable_dbus enable_snmp_vrrp enable_snmp_keepalived enable_snmp_checker
    enable_snmp_rfc enable_snmp_rfcv2 enable_snmp_rfcv3 enable_traps snmp_socket
    vrrp_notify_fifo vrrp_notify_fifo_script notify_fifo notify_fifo_script
    vrrp_notify_priority_changes
"""
_FIREWALL_GLOBALS = """
    vrrp_iptables vrrp_ipsets nftables nftables_priority nftables_ifindex nftables_counters
"""


def _table(words: str, reason: Reason) -> dict[str, Reason]:
    return dict.fromkeys(words.split(), reason)


GLOBAL_DEFS: dict[str, Reason] = {
    **_table(_PROCESS_GLOBALS, (NOTE, PROCESS)),
    **_table(_EMAIL_GLOBALS, (NOTE, EMAIL)),
    **_table(_LVS_GLOBALS, (NOTE, LVS)),
    **_table(_SNMP_GLOBALS, (NOTE, SNMP)),
    **_table(_FIREWALL_GLOBALS, (NOTE, FIREWALL)),
    "script_user": (NOTE, SCRIPTS),
    "enable_script_security": (NOTE, SCRIPTS),
    "vrrp_garp_interval": (NOTE, GARP),
    "vrrp_gna_interval": (NOTE, GARP),
    "vrrp_garp_master_delay": (NOTE, "keepvip sends no second burst of gratuitous ARPs"),
    "vrrp_mcast_group4": (
        UNSUPPORTED,
        "keepvip sends to the standard group 224.0.0.18 (or to unicastPeers)",
    ),
    "vrrp_mcast_group6": (
        UNSUPPORTED,
        "keepvip sends to the standard group ff02::12 (or to unicastPeers)",
    ),
}

INSTANCE: dict[str, Reason] = {
    "smtp_alert": (NOTE, EMAIL),
    "debug": (NOTE, PROCESS),
    "linkbeat_use_polling": (NOTE, PROCESS),
    "kernel_rx_buf_size": (NOTE, PROCESS),
    "promote_secondaries": (
        NOTE,
        "keepvip adds each VIP as its own address; the kernel promotes secondaries by itself when told to",
    ),
    "skip_check_adv_addr": (NOTE, PROCESS),
    "check_unicast_src": (
        NOTE,
        "keepvip always drops advertisements from addresses outside unicastPeers",
    ),
    "unicast_fault_no_peer": (NOTE, PROCESS),
    "lvs_sync_daemon_interface": (NOTE, LVS),
    "notify_priority_changes": (NOTE, SNMP),
    "garp_master_delay": (NOTE, "keepvip sends no second burst of gratuitous ARPs"),
    "garp_master_refresh_repeat": (NOTE, "keepvip sends one announcement per refresh"),
    "garp_lower_prio_delay": (NOTE, GARP),
    "garp_lower_prio_repeat": (NOTE, GARP),
    "lower_prio_no_advert": (NOTE, PROCESS),
    "higher_prio_send_advert": (
        NOTE,
        "a keepvip master that yields to a higher priority always sends a last advertisement",
    ),
    "accept": (NOTE, FIREWALL),
    "no_accept": (UNSUPPORTED, FIREWALL),
    "native_ipv6": (NOTE, "keepvip runs the election on the family of the first address"),
    "dont_track_primary": (
        UNSUPPORTED,
        "keepvip always tracks its own interface (down or without an address means Fault)",
    ),
    "use_vmac": (
        UNSUPPORTED,
        "keepvip binds VIPs to the interface itself; it creates no VRRP MAC interface",
    ),
    "vmac_xmit_base": (UNSUPPORTED, "keepvip creates no VRRP MAC interface"),
    "use_ipvlan": (UNSUPPORTED, "keepvip creates no ipvlan interface"),
    "unicast_ttl": (UNSUPPORTED, "keepvip sends with TTL 255 and drops anything else (RFC 9568)"),
    "old_unicast_checksum": (UNSUPPORTED, "keepvip computes the RFC checksum only"),
    "notify_stop": (
        UNSUPPORTED,
        "keepvip has no hook for stopping (a stopping master hands over and runs no script)",
    ),
    "notify_deleted": (UNSUPPORTED, "keepvip has no hook for a removed instance"),
    "notify_master_rx_lower_pri": (UNSUPPORTED, "keepvip has no hook for this event"),
    "track_file": (UNSUPPORTED, TRACKERS),
    "track_process": (UNSUPPORTED, TRACKERS),
    "track_bfd": (UNSUPPORTED, TRACKERS),
    "track_src_ip": (UNSUPPORTED, "keepvip tracks its interface, not a configured source address"),
    "virtual_routes": (UNSUPPORTED, STATIC),
    "virtual_rules": (UNSUPPORTED, STATIC),
}

SCRIPT: dict[str, Reason] = {
    "user": (NOTE, SCRIPTS),
    "init_fail": (NOTE, "a keepvip check counts as failing until it has run once anyway"),
}

SYNC_GROUP: dict[str, Reason] = {
    "smtp_alert": (NOTE, EMAIL),
    "notify_priority_changes": (NOTE, SNMP),
    "notify_stop": INSTANCE["notify_stop"],
    "track_file": (UNSUPPORTED, TRACKERS),
    "track_process": (UNSUPPORTED, TRACKERS),
    "track_bfd": (UNSUPPORTED, TRACKERS),
}

ADDRESS_OPTIONS_WITH_VALUE = frozenset(
    {"brd", "broadcast", "scope", "peer", "track_group", "metric"}
)
ADDRESS_FLAGS = frozenset(
    {"home", "-nodad", "nodad", "noprefixroute", "autojoin", "no_track", "use_vmac"}
)
