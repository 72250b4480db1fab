"""Shared test fixtures: the repository root, ../shared (test photos, videos and the face landmarker model).

The checkout is expected beside `shared/` (CI and developers have ../shared). Its absence fails the tests
that need it with a clear message; nothing is skipped silently. For the whole session
CELEBLOOK_FACE_LANDMARKER points at ../shared/models/face_landmarker.task.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = (REPO_ROOT / ".." / "shared").resolve()
LANDMARKER_MODEL = SHARED_DIR / "models" / "face_landmarker.task"


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
