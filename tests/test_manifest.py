"""The shipped models folder: every file has a manifest entry, and an altered shipped file is refused when loaded."""
from __future__ import annotations

import shutil

import pytest

import engine.models as models
from engine.edits import DirectionSet
from engine.errors import BadInputError
from engine.inversion.corrections.identity import IdentityCorrection
from engine.inversion.skin_tone import SkinToneModel
from engine.models import MANIFEST_PATH, MODELS_DIR, load_manifest, sha256_file


def test_every_shipped_file_has_a_matching_manifest_entry():
    entries = {e.file: e for e in load_manifest().values()}
    files = [p for p in MODELS_DIR.iterdir() if p.is_file() and p.name != MANIFEST_PATH.name]
    assert files
    for path in files:
        assert path.name in entries, f"{path.name} has no manifest entry"
        assert sha256_file(path) == entries[path.name].sha256, path.name
        assert entries[path.name].source and entries[path.name].licence, path.name


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A copy of the models folder (npz files and the manifest) that the loaders take for the shipped one."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(MANIFEST_PATH, folder / MANIFEST_PATH.name)
    for path in MODELS_DIR.glob("*.npz"):
        shutil.copy(path, folder / path.name)
    real = models.check_shipped

    def check(path, models_dir=folder, manifest_path=folder / MANIFEST_PATH.name):
        return real(path, models_dir, manifest_path)

    monkeypatch.setattr(models, "check_shipped", check)
    monkeypatch.setattr("engine.edits.check_shipped", check)
    return folder


@pytest.mark.parametrize("name, load", [("skin_tone.npz", SkinToneModel.load), ("directions.npz", DirectionSet.load),
                                        ("identity_correction.npz", IdentityCorrection.load)])
def test_an_altered_shipped_model_is_refused_with_one_clear_message(shipped_copy, name, load):
    path = shipped_copy / name
    load(path)  # the untouched copy loads
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: still a readable zip, perhaps, but not the shipped model
    path.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="sha256 mismatch"):
        load(path)
    path.write_bytes(bytes(data[: len(data) // 3]))  # truncated
    with pytest.raises(BadInputError, match="sha256 mismatch"):
        load(path)


def test_an_unlisted_file_in_the_models_folder_is_refused(shipped_copy):
    stray = shipped_copy / "stray.npz"
    shutil.copy(shipped_copy / "skin_tone.npz", stray)
    with pytest.raises(BadInputError, match="not in its manifest"):
        SkinToneModel.load(stray)
