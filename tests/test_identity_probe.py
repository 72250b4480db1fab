"""training.evaluate.probe_identity_feature: its descriptor, its ridge correction and its dlib-independent shape metric."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from tests.conftest import require

require("dlib")

from engine.align import align_face, usable_faces  # noqa: E402
from engine.image_io import load_image  # noqa: E402
from training.evaluate.dlib_judge import DlibIdentity  # noqa: E402
from training.evaluate.probe_identity_feature import apply_correction, central_descriptor, fit_correction, shape_error  # noqa: E402


def test_central_descriptor_tells_the_same_person_from_another(face_photo, landmarker):
    """Aligned crops with the fixed central box: two photos of Obama are closer than Obama and Biden, and the
    same person is under dlib's 0.6."""
    ident = DlibIdentity()

    def descriptor(name):
        image = load_image(face_photo(name))
        return central_descriptor(ident, align_face(image, usable_faces(landmarker.detect(image))[0], 256).image)

    obama, obama_small, biden = descriptor("obama.jpg"), descriptor("obama-240p.jpg"), descriptor("biden.jpg")
    assert obama.shape == (128,)
    same, other = np.linalg.norm(obama - obama_small), np.linalg.norm(obama - biden)
    assert same < 0.6 < other


def test_ridge_correction_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    m, c = rng.normal(size=(8, 5)), rng.normal(size=5)
    x = rng.normal(size=(400, 8))
    mean, b = fit_correction(x, x @ m + c + 0.01 * rng.normal(size=(400, 5)), lam=0.1)
    x_new = rng.normal(size=(20, 8))
    assert np.abs(apply_correction(x_new, mean, b) - (x_new @ m + c)).max() < 0.05
    assert apply_correction(x_new[0], mean, b).shape == (1, 5)


def test_shape_error_ignores_pose_and_scale_but_not_shape():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(478, 3))
    t = 0.4
    rot = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    face = lambda p: SimpleNamespace(points=p)  # noqa: E731
    assert shape_error(face(a), face(3.0 * a @ rot.T + 7.0)) < 1e-9
    assert shape_error(face(a), face(a + 0.2 * rng.normal(size=a.shape))) > 0.1
