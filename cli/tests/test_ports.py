"""Busy ports are found before anything starts, and named by their option."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from orchard_cli.ports import PortInUseError, check_ports_free, port_is_free


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_with_a_listener_is_busy(busy_port: int):
    assert not port_is_free("127.0.0.1", busy_port)


def test_an_unused_port_is_free(port_factory: Any):
    assert port_is_free("127.0.0.1", port_factory())


def test_the_error_names_the_port_and_the_option_that_sets_it(busy_port: int, port_factory: Any):
    ports = {"--mlflow-port": port_factory(), "--gateway-port": busy_port}

    with pytest.raises(PortInUseError, match=f"port {busy_port} .*--gateway-port"):
        check_ports_free("127.0.0.1", ports)


def test_the_same_port_for_two_services_is_refused(port_factory: Any):
    port = port_factory()

    with pytest.raises(PortInUseError, match=f"--mlflow-port and --gateway-port .* {port}"):
        check_ports_free("127.0.0.1", {"--mlflow-port": port, "--gateway-port": port})
