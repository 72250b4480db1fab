"""Shared test fixtures: the repository root, ../shared (test photos, videos and the face landmarker model), and
the session's isolation from the user's machine.

The checkout is expected beside `shared/` (CI and developers have ../shared). Its absence fails the tests
that need it with a clear message; nothing is skipped silently, and a missing extra (torch, openvino, ...) fails
its test module with the install command (`require`), it is not skipped. For the whole session
CELEBLOOK_FACE_LANDMARKER points at ../shared/models/face_landmarker.task.

Isolation (docs/TESTING.md): from pytest_configure on, HOME and XDG_CACHE_HOME point at a temporary folder, so
nothing the tests (or the libraries they load) cache lands in the user's home, and no test sees what an earlier
run or the user left there. The one input read from the real user cache is the official MobileStyleGAN IR
(training/convert/random_face_weights.py; `python -m training.convert.generator` fetches it once, as .ci/run
does), read-only: it is found before the redirection and handed over as CELEBLOOK_RANDOM_FACE_DIR. Tests never
fetch it (`pip download`) and never open a network connection: a connect() or name lookup for anything but this machine raises
and fails the test that made it, even where the code under test catches the error.
"""
from __future__ import annotations

import importlib
import ipaddress
import os
import shutil
import socket
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = (REPO_ROOT / ".." / "shared").resolve()
LANDMARKER_MODEL = SHARED_DIR / "models" / "face_landmarker.task"


_REAL_CONNECT, _REAL_CONNECT_EX = socket.socket.connect, socket.socket.connect_ex
_REAL_GETADDRINFO = socket.getaddrinfo
_session: dict = {"home": None, "connections": []}  # the temporary home; the refused connections and lookups


class NetworkUsedError(RuntimeError):
    """A test tried to open a network connection (not an OSError, so code that handles network errors does not
    take it for one)."""


def require(module: str, extra: str = "train") -> ModuleType:
    """Import `module` or fail, at collection, with the install command of the extra that brings it (a module
    that needs it must not pass by being skipped)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = str(exc)
    pytest.fail(f"{module} is not installed ({missing}); these tests need the [{extra}] extra: "
                f"python -m pip install -e '.[train,dev]'", pytrace=False)


def _is_local_host(host) -> bool:
    host = host.decode() if isinstance(host, bytes) else host
    if host is None or host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name that would need the network to resolve


def _is_local(sock: socket.socket, address) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return True  # Unix sockets (D-Bus, ...) stay on this machine
    return _is_local_host(address[0] if isinstance(address, tuple) else address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _is_local_host(host):
        _session["connections"].append(host)
        raise NetworkUsedError(f"the tests must not look up network names ({host!r})")
    return _REAL_GETADDRINFO(host, *args, **kwargs)


def _guarded_connect(real):
    def connect(sock, address):
        if not _is_local(sock, address):
            _session["connections"].append(address)
            raise NetworkUsedError(f"the tests must not open network connections (connect to {address!r})")
        return real(sock, address)
    return connect


def _official_ir_dir() -> str | None:
    """The verified MobileStyleGAN IR folder as the real environment finds it, never fetching; None if absent."""
    from training.convert.random_face_weights import ir_dir

    try:
        return str(ir_dir(allow_fetch=False))
    except (FileNotFoundError, RuntimeError):
        return None


def pytest_configure(config):
    ir = _official_ir_dir()  # before HOME moves: the user's cache is where `python -m training.convert...` put it
    home = Path(tempfile.mkdtemp(prefix="celeblook-tests-home-"))
    _session["saved"] = {k: os.environ.get(k) for k in ("HOME", "XDG_CACHE_HOME", "CELEBLOOK_RANDOM_FACE_DIR")}
    _session["home"] = home
    os.environ["HOME"] = str(home)
    os.environ["XDG_CACHE_HOME"] = str(home / ".cache")
    if ir:
        os.environ["CELEBLOOK_RANDOM_FACE_DIR"] = ir
    socket.socket.connect = _guarded_connect(_REAL_CONNECT)
    socket.socket.connect_ex = _guarded_connect(_REAL_CONNECT_EX)
    socket.getaddrinfo = _guarded_getaddrinfo

    import training.convert.random_face_weights as rfw

    def no_fetch(dest=None):
        raise NetworkUsedError("the tests do not download the random-face wheel: fetch the official MobileStyleGAN "
                               "IR once with `python -m training.convert.generator` (or set "
                               "CELEBLOOK_RANDOM_FACE_DIR to a folder holding its four files), then rerun")
    rfw.fetch_wheel = no_fetch


def pytest_unconfigure(config):
    socket.socket.connect, socket.socket.connect_ex = _REAL_CONNECT, _REAL_CONNECT_EX
    socket.getaddrinfo = _REAL_GETADDRINFO
    for key, value in _session.get("saved", {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if _session["home"] is not None:
        shutil.rmtree(_session["home"], ignore_errors=True)


@pytest.fixture(scope="session")
def user_cache() -> Path:
    """The session's user cache ($XDG_CACHE_HOME, a temporary folder, empty at the start of the session)."""
    return Path(os.environ["XDG_CACHE_HOME"])


@pytest.fixture(autouse=True)
def no_network():
    """Fail the test that tried to connect anywhere but this machine, even if the code under test swallowed the
    error (e.g. turned it into a 'could not download' message)."""
    before = len(_session["connections"])
    yield
    tried = _session["connections"][before:]
    if tried:
        pytest.fail(f"the test opened network connections: {tried}", pytrace=False)


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"missing {path}: the tests need the shared data folder at {SHARED_DIR} "
                    "(a checkout of this repository beside shared/)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED_DIR)


@pytest.fixture(scope="session")
def faces_dir(shared_dir: Path) -> Path:
    return _require(shared_dir / "data" / "faces")


@pytest.fixture(scope="session")
def videos_dir(shared_dir: Path) -> Path:
    return _require(shared_dir / "data" / "video")


@pytest.fixture(scope="session")
def face_photo(faces_dir: Path):
    """face_photo('obama.jpg') -> the path of that shared test photo."""
    return lambda name: _require(faces_dir / name)


@pytest.fixture(scope="session")
def landmarker_model(shared_dir: Path) -> Path:
    return _require(LANDMARKER_MODEL)


@pytest.fixture(scope="session", autouse=True)
def landmarker_env():
    """Point CELEBLOOK_FACE_LANDMARKER at the shared model for the session (restored afterwards)."""
    old = os.environ.get("CELEBLOOK_FACE_LANDMARKER")
    os.environ["CELEBLOOK_FACE_LANDMARKER"] = str(LANDMARKER_MODEL)
    yield
    if old is None:
        os.environ.pop("CELEBLOOK_FACE_LANDMARKER", None)
    else:
        os.environ["CELEBLOOK_FACE_LANDMARKER"] = old


@pytest.fixture(scope="session")
def landmarker(landmarker_model: Path):
    """One IMAGE-mode FaceLandmarker shared by the session's tests."""
    from engine.landmarks import FaceLandmarker

    with FaceLandmarker(landmarker_model, max_faces=4) as lm:
        yield lm
