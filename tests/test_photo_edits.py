"""Morph and edit a real photo end to end: CLI, target cache, sweep GIFs, bad input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.cli import main as cli_main
from engine.inversion.encoder import MODEL_NAME, Encoder
from engine.errors import BadInputError, NoFaceError
from engine.generator import Generator
from engine.image_io import load_image
from engine.landmarks import EXPRESSIONS, FaceLandmarker
from engine.models import resolve_model, sha256_file
from engine.inversion.targets import TargetCache, builtin_targets


@pytest.fixture(scope="module")
def parts():
    gen, enc = Generator.load(threads=2), Encoder.load(threads=2)
    with FaceLandmarker(expressions=True) as lm:
        yield gen, enc, lm


@pytest.mark.slow
def test_target_cache_inverts_once_and_reuses(tmp_path, parts, faces_dir):
    gen, enc, lm = parts
    cache = TargetCache(enc, gen, lm, sha256_file(resolve_model(MODEL_NAME)), folder=tmp_path / "targets")
    first = cache.load(faces_dir / "biden.jpg")
    entries = list((tmp_path / "targets").glob("*.npz"))
    assert len(entries) == 1 and first.wplus.shape == (1, 23, 512) and first.thumbnail.shape == (128, 128, 3)
    again = cache.load(faces_dir / "biden.jpg")
    np.testing.assert_array_equal(first.wplus, again.wplus)
    assert first.skin.shape == (2, 3) and np.array_equal(first.skin, again.skin)
    assert set(first.expression) == set(EXPRESSIONS) and first.expression == again.expression
    assert first.expression["smile"] < 0.3 and first.expression["jaw_open"] < 0.2  # Biden's photo: lips closed
    assert first.live_settings()["target_expression"] == first.expression
    np.savez(entries[0], wplus=first.wplus, thumbnail=first.thumbnail)  # an entry from before skin and expression
    upgraded = cache.load(faces_dir / "biden.jpg")  # measured from the photo again, not re-inverted
    np.testing.assert_array_equal(upgraded.wplus, first.wplus)
    np.testing.assert_allclose(upgraded.skin, first.skin, atol=0.5)
    assert upgraded.expression == pytest.approx(first.expression, abs=0.02)
    with np.load(entries[0]) as data:
        assert "skin" in data and "expression" in data
    entries[0].write_bytes(b"damaged")  # a broken cache entry is rebuilt, not fatal
    np.testing.assert_allclose(cache.load(faces_dir / "biden.jpg").wplus, first.wplus, atol=1e-5)
    with pytest.raises(BadInputError):
        cache.load(tmp_path / "missing.jpg")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 300, 3), 128, np.uint8))
    with pytest.raises(NoFaceError):
        cache.load(blank)


def test_builtin_targets_are_faces(parts):
    gen, _, lm = parts
    for target in builtin_targets(gen, seeds=(0, 3)):
        assert target.wplus.shape == (1, 23, 512) and target.expression is None
        big = cv2.resize(target.thumbnail, (512, 512))
        assert lm.detect(big), target.name
    grin = builtin_targets(gen, seeds=(0,), landmarker=lm)[0]  # seed 0 grins: its resting mouth is measured
    assert grin.expression["smile"] > 0.5 and grin.live_settings()["target_expression"] == grin.expression


def _face_box_diff(a: np.ndarray, b: np.ndarray, lm: FaceLandmarker) -> tuple[float, float]:
    """Mean |a - b| inside the face box of `a` and in the image's top-left corner region."""
    x0, y0, x1, y1 = (int(v) for v in lm.detect(a)[0].bbox)
    inside = np.abs(a[y0:y1, x0:x1].astype(int) - b[y0:y1, x0:x1].astype(int)).mean()
    corner = np.abs(a[:40, :40].astype(int) - b[:40, :40].astype(int)).mean()
    return inside, corner


@pytest.mark.slow
def test_cli_morph_writes_photo_and_sweep_gif(tmp_path, parts, faces_dir, monkeypatch):
    import imageio.v3 as iio

    _, _, lm = parts
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out, gif = tmp_path / "m.jpg", tmp_path / "m.gif"
    rc = cli_main(["morph", str(faces_dir / "obama.jpg"), "--to", str(faces_dir / "biden.jpg"),
                   "--strength", "0.8", "--out", str(out), "--gif", str(gif), "--frames", "4"])
    assert rc == 0
    photo, result = load_image(faces_dir / "obama.jpg"), load_image(out)
    assert result.shape == photo.shape
    inside, corner = _face_box_diff(photo, result, lm)
    assert inside > 8 and corner < 1.0  # the face changed, the rest of the photo did not
    frames = iio.imread(gif, index=None)
    assert len(frames) == 6  # 4 frames + boomerang back
    assert list((tmp_path / "cache" / "celeblook" / "targets").glob("*.npz"))


@pytest.mark.slow
def test_cli_edit_turns_the_head(tmp_path, parts, faces_dir):
    from training.data.face_labels import FaceLabeler

    out_l, out_r = tmp_path / "l.png", tmp_path / "r.png"
    for yaw, out in ((-15, out_l), (15, out_r)):
        assert cli_main(["edit", str(faces_dir / "obama.jpg"), "--yaw", str(yaw), "--crop", "--out", str(out)]) == 0
    labeler = FaceLabeler()
    left = labeler.label(cv2.cvtColor(load_image(out_l), cv2.COLOR_BGR2RGB))
    right = labeler.label(cv2.cvtColor(load_image(out_r), cv2.COLOR_BGR2RGB))
    labeler.close()
    assert right["yaw"] - left["yaw"] > 15  # asked for 30 degrees apart


def test_cli_edit_and_morph_bad_input(tmp_path, faces_dir, capsys):
    photo = str(faces_dir / "obama.jpg")
    assert cli_main(["edit", photo, "--out", str(tmp_path / "o.png")]) == 2  # nothing asked
    assert cli_main(["edit", photo, "--yaw", "90", "--out", str(tmp_path / "o.png")]) == 2  # beyond calibration
    assert cli_main(["morph", photo, "--to", str(tmp_path / "none.jpg"), "--out", str(tmp_path / "o.png")]) == 2
    assert cli_main(["morph", photo, "--to", photo, "--strength", "2", "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("celeblook ") for line in err)
    assert "Traceback" not in "".join(err)
