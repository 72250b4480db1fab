"""Real-face morph targets for the live student's training set (training/data/morph_targets.py): a UTKFace photo
becomes a target the way a dropped photo does, and its driven copies move only along the shipped pose and
expression directions, by amounts inside the drawn ranges, the same for a target whether the list grows or not."""
from __future__ import annotations

import numpy as np
import pytest

from engine.edits import DirectionSet
from training.data.morph_targets import MOTION_RANGE, driven_codes, group_size


def _amounts(directions: DirectionSet, delta: np.ndarray) -> np.ndarray:
    """Least-squares amounts (real units) of each MOTION_RANGE direction that make up `delta` (23, 512)."""
    basis = np.stack([directions.directions[k].delta(1.0)[0].ravel() for k in MOTION_RANGE], 1)  # (23*512, 6)
    x, *_ = np.linalg.lstsq(basis, delta.ravel(), rcond=None)
    residual = np.linalg.norm(basis @ x - delta.ravel()) / max(np.linalg.norm(delta), 1e-9)
    return x, residual


def test_driven_codes_move_a_target_only_along_pose_and_expression_within_range():
    directions = DirectionSet.load()
    targets = np.random.default_rng(0).normal(0, 0.3, (3, 23, 512)).astype(np.float32)
    k = 2
    codes = driven_codes(targets, k, seed=0)
    assert codes.shape == (3 * (1 + k), 23, 512)
    for j, target in enumerate(targets):
        group = codes[j * (1 + k):(j + 1) * (1 + k)]
        assert np.array_equal(group[0], target)  # the target at rest comes first
        for code in group[1:]:
            x, residual = _amounts(directions, code - target)
            assert residual < 1e-3  # nothing but the named directions moved
            for (lo, hi), amount, name in zip(MOTION_RANGE.values(), x, MOTION_RANGE):
                m = directions.directions[name].max_units
                assert lo * m - 1e-3 <= amount <= hi * m + 1e-3, (name, amount)
    assert not np.allclose(codes[1] - targets[0], codes[1 + k] - targets[1])  # each target its own motion
    # a cache extended from target 1 on draws the same codes as one built at once
    assert np.array_equal(driven_codes(targets[1:], k, seed=0, first=1), codes[1 + k:])
    assert not np.array_equal(driven_codes(targets, k, seed=1), codes)
    assert driven_codes(targets[:0], k, seed=0).shape == (0, 23, 512)  # a cache past the last photo with a face


def test_with_the_users_codes_each_photo_also_gives_the_user_and_a_blend_toward_their_driven_target():
    rng = np.random.default_rng(1)
    targets, users = (rng.normal(0, 0.3, (2, 23, 512)).astype(np.float32) for _ in range(2))
    k = 2
    codes = driven_codes(targets, k, seed=0, users=users)
    n = group_size(k, True)
    assert codes.shape == (2 * n, 23, 512)
    for j in range(2):
        group = codes[j * n:(j + 1) * n]
        assert np.array_equal(group[:1 + k], driven_codes(targets, k, seed=0)[j * (1 + k):(j + 1) * (1 + k)])
        assert np.array_equal(group[-2], users[j])
        s = (group[-1] - users[j]).ravel() @ (group[k] - users[j]).ravel() / np.sum((group[k] - users[j]) ** 2)
        assert 0.3 <= s <= 0.9 and np.allclose(group[-1], users[j] + s * (group[k] - users[j]), atol=1e-5)


@pytest.mark.slow
def test_a_utkface_photo_becomes_a_target_and_a_resumed_run_does_not_redo_it(tmp_path, monkeypatch):
    """One held-out photo through the app's target inversion (one pass, quality mode, skin match): its code renders
    a face; asked again, the cached codes come back without inverting anything."""
    import engine.inversion.inverter as inverter
    from engine.generator import Generator
    from engine.landmarks import FaceLandmarker
    from training.data.morph_targets import invert_targets
    from training.data.utkface import UTK_DIR

    if not UTK_DIR.is_dir():
        pytest.skip(f"UTKFace not found at {UTK_DIR}")
    first = invert_targets("heldout", 1, folder=tmp_path)
    assert first["wplus"].shape == first["user"].shape == (1, 23, 512) and len(first["names"]) == 1
    assert not np.allclose(first["wplus"], first["user"])  # the quality mode moved the target from the one pass
    with FaceLandmarker() as lm:
        import cv2

        render = cv2.cvtColor(Generator.load(2).render(first["wplus"]), cv2.COLOR_RGB2BGR)
        assert lm.detect(render)

    def no_inverting(*a, **k):
        raise AssertionError("a cached target was inverted again")

    monkeypatch.setattr(inverter.Inverter, "invert_photo", no_inverting)
    again = invert_targets("heldout", 1, folder=tmp_path)
    assert np.array_equal(again["wplus"], first["wplus"]) and list(again["names"]) == list(first["names"])
    assert np.array_equal(again["user"], first["user"])
