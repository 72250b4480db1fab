"""The test session's isolation (tests/conftest.py): a temporary home and user cache, no network connections, no
fetch of the official generator weights."""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from engine.models import user_cache_dir
from tests.conftest import NetworkUsedError, _session


def test_home_and_user_cache_are_the_sessions_temporary_folder(user_cache):
    home = Path(os.environ["HOME"])
    assert home == _session["home"] and home.name.startswith("celeblook-tests-home-")
    assert Path(os.path.expanduser("~")) == home and user_cache.parent == home
    assert user_cache_dir() == user_cache / "celeblook"


def test_a_connection_to_another_machine_raises_and_is_recorded():
    before = len(_session["connections"])
    for connect in (socket.socket.connect, socket.socket.connect_ex):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(NetworkUsedError):
            connect(s, ("192.0.2.1", 80))  # TEST-NET-1: never reached, the guard refuses first
    with pytest.raises(NetworkUsedError):
        socket.create_connection(("example.invalid", 443), timeout=1)  # by name too, before any lookup
    assert len(_session["connections"]) == before + 3
    del _session["connections"][before:]  # recorded as expected: do not fail this test for it


def test_connections_to_this_machine_still_work():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        accepted = []
        t = threading.Thread(target=lambda: accepted.append(server.accept()[0].close()))
        t.start()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
        t.join(5)
    assert accepted == [None]


def test_the_official_weights_are_never_fetched():
    from training.convert.random_face_weights import fetch_wheel

    with pytest.raises(NetworkUsedError, match="python -m training.convert.generator"):
        fetch_wheel()
