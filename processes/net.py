"""The loopback address every local server binds, free ports, and the two checks a start-up waits on."""

from __future__ import annotations

import errno
import socket

import requests

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something listens on host:port (binding fails), like the servers we start would find."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # The servers set SO_REUSEADDR too, so connections in TIME_WAIT do not count as "taken".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def listening(port: int, host: str = HOST) -> bool:
    """True when a TCP connection to host:port is accepted."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when `url` answers 200; False when it answers anything else or cannot be reached yet."""
    try:
        return requests.get(url, timeout=timeout_s).status_code == 200
    except requests.RequestException:
        return False
