"""Age and gender edits: the shipped directions (decoupled, calibrated), their effect on a generated face as the
UTKFace-trained labeller sees it, and the app's sliders."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported (the slider test)

import cv2
import numpy as np
import pytest

from engine.edits import DIRECTIONS_PATH, EXPRESSION_NAMES, DirectionSet

# a copy of the labeller the directions were fitted with (training/train/age_gender.py; trained on UTKFace:
# non-commercial research use only); kept for this test, the engine never loads it
LABELLER = Path(__file__).parent / "data" / "age_gender_labeller.npz"


def test_shipped_age_and_gender_directions_are_decoupled_and_calibrated():
    ds = DirectionSet.load(DIRECTIONS_PATH)
    age, gender = ds.directions["age"], ds.directions["gender"]
    assert age.unit == "years" and gender.unit == "P(female)"
    assert age.units_per_step > 0 and gender.units_per_step > 0
    assert age.max_units * 1.5 >= 20  # `edit --age 20` is within the calibrated range
    for d in (age, gender):
        assert abs(np.linalg.norm(d.vector) - 1) < 1e-4
        for name in EXPRESSION_NAMES:  # nothing of pose or expression
            assert abs(float(d.vector @ ds.directions[name].vector)) < 1e-4
    w = np.zeros((1, 23, 512), np.float32)
    assert np.abs(ds.apply(w, age=10) - w).max() > 0 and np.abs(ds.apply(w, gender=0.5) - w).max() > 0


def test_age_direction_makes_a_generated_face_older_and_younger(landmarker):
    from engine.face_id import FaceId
    from engine.generator import Generator
    from training.data.utkface_labels import face_features
    from training.models.age_gender import AgeGenderHeads, feature_vector

    heads = AgeGenderHeads.load(LABELLER)
    gen, ds, face_id = Generator.load(2, resolution=256), DirectionSet.load(DIRECTIONS_PATH), FaceId.load(2)

    def age(latent) -> float:
        f = face_features(cv2.cvtColor(gen.render(latent), cv2.COLOR_RGB2BGR), landmarker, face_id)
        return float(heads.predict(feature_vector(f[0][None], f[1][None]))[0][0])

    changes = {+15.0: [], -15.0: []}
    for seed in (21, 22):
        w = gen.sample_w(seed, 0.6)
        base = age(w)
        for asked in changes:
            changes[asked].append(age(ds.apply(w, age=asked)) - base)
    assert np.mean(changes[+15.0]) > 7 and np.mean(changes[-15.0]) < -7, changes


def test_age_and_gender_sliders_exist_and_change_the_edit(qapp):
    from celeblook_desktop.panels.controls import ControlsPanel
    from types import SimpleNamespace

    from celeblook_desktop.window import MainWindow

    panel = ControlsPanel()
    assert {"age", "gender"} <= set(panel.edit_sliders)
    ds = DirectionSet.load(DIRECTIONS_PATH)
    for name in ("age", "gender"):
        panel.edit_sliders[name][0].setEnabled(True)
    panel.edit_sliders["age"][0].setValue(50)
    panel.edit_sliders["gender"][0].setValue(-100)
    window = SimpleNamespace(controls=panel, target=None,
                             _directions={n: (ds.directions[n].unit, ds.directions[n].max_units) for n in ds.directions})
    settings = MainWindow.settings(window)  # the window's own slider -> LiveSettings mapping
    assert settings.amounts["age"] == pytest.approx(0.5 * ds.directions["age"].max_units)
    assert settings.amounts["gender"] == pytest.approx(-ds.directions["gender"].max_units)
    assert panel.edit_sliders["age"][1].text().endswith(" y")
    w = np.random.default_rng(0).standard_normal((1, 23, 512)).astype(np.float32)
    out = ds.apply(w, **settings.amounts)
    assert np.abs(out - w).max() > 0.1
    half = ds.apply(w, **settings.partial(0.5).amounts)  # the sweep GIF's middle frame
    np.testing.assert_allclose(half - w, 0.5 * (out - w), atol=1e-4)
