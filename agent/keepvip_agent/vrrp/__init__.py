"""The sans-IO VRRP core: packets, frames and the state machine.

Nothing in this package touches a socket, a clock or an event loop (an
import-linter contract enforces it), so every RFC rule is testable under fake
time and byte vectors.
"""
