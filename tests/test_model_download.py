"""The face landmarker's download (engine.models.download_model) without the network: a fake fetch at the URL
boundary serves the real file (it is kept, checked against the pinned sha256) or a wrong one (refused, nothing
left behind); missing_download says when a download would help."""
from __future__ import annotations

import io

import pytest

from engine.errors import ModelMissingError
from engine.models import download_model, load_manifest, missing_download

PINNED = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"


@pytest.fixture
def no_landmarker(monkeypatch, tmp_path):
    """No landmarker anywhere: no env var, no model dir, an empty user cache."""
    monkeypatch.delenv("CELEBLOOK_FACE_LANDMARKER", raising=False)
    monkeypatch.delenv("CELEBLOOK_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "celeblook" / "models"


def fake_fetch(data: bytes, calls: list):
    def fetch(url, timeout):
        calls.append((url, timeout))
        return io.BytesIO(data)
    return fetch


def test_download_keeps_the_checked_file(no_landmarker, landmarker_model):
    entry = missing_download("face_landmarker")
    assert entry is not None and entry.sha256 == PINNED
    calls = []
    path = download_model(entry, fetch=fake_fetch(landmarker_model.read_bytes(), calls))
    assert calls == [(entry.url, 60.0)] and entry.url.startswith("https://")
    assert path == no_landmarker / "face_landmarker.task" and path.read_bytes() == landmarker_model.read_bytes()
    assert missing_download("face_landmarker") is None, "found in the user cache now"


def test_wrong_checksum_is_refused_and_nothing_is_left(no_landmarker):
    entry = load_manifest()["face_landmarker"]
    with pytest.raises(ModelMissingError, match="sha256"):
        download_model(entry, fetch=fake_fetch(b"not the model", []))
    assert not list(no_landmarker.iterdir()), "no partial or temporary file"


def test_no_download_offered_for_a_path_the_user_named(no_landmarker, monkeypatch, tmp_path):
    assert missing_download("face_landmarker", explicit=tmp_path / "mine.task") is None
    monkeypatch.setenv("CELEBLOOK_FACE_LANDMARKER", str(tmp_path / "missing.task"))
    assert missing_download("face_landmarker") is None, "the user's setting wins: a download would not be used"
