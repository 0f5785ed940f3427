"""Checks that the ports the platform will listen on are free before anything starts."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping

__all__ = ["PortInUseError", "check_ports_free", "port_is_free"]


class PortInUseError(Exception):
    """A port given to ``orchard up`` is taken, or given to two services."""


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now.

    SO_REUSEADDR mirrors what uvicorn does, so a port that only has connections in TIME_WAIT
    counts as free, while one with a listener does not.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False
    family, socktype, proto, _, address = infos[0]
    with contextlib.closing(socket.socket(family, socktype, proto)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return False
    return True


def check_ports_free(host: str, ports: Mapping[str, int]) -> None:
    """Check each port, named by the option that sets it (``{"--mlflow-port": 5000}``).

    Raises:
        PortInUseError: With a message naming the port and the option to change.
    """
    seen: dict[int, str] = {}
    for option, port in ports.items():
        if port in seen:
            raise PortInUseError(f"{seen[port]} and {option} are both set to port {port}")
        seen[port] = option
    for option, port in ports.items():
        if not port_is_free(host, port):
            raise PortInUseError(
                f"port {port} on {host} ({option}) is already in use by another program; "
                f"stop it or choose another port with {option}"
            )
