"""FFHQ-style alignment: the quad recipe, the crop and its inverse, and `celeblook align` on good and bad input."""
import cv2
import numpy as np
import pytest
from PIL import Image

from engine.align import (CROP_SIZES, align_face, eye_mouth_points, face_warnings, ffhq_quad, quad_matrix,
                          transform_points, warp_quad)
from engine.cli import main as cli_main
from engine.errors import BadInputError
from engine.image_io import load_image, save_image


def classic_ffhq_quad(lm_eye_left, lm_eye_right, mouth_left, mouth_right):
    """The recipe as written in ffhq-dataset's recreate_aligned_images (dlib's 68 points there)."""
    eye_left = np.mean(lm_eye_left, axis=0)
    eye_right = np.mean(lm_eye_right, axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (mouth_left + mouth_right) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


@pytest.fixture(scope="module")
def obama(landmarker, face_photo):
    image = load_image(face_photo("obama.jpg"))
    return image, landmarker.detect(image)[0]


def test_quad_is_the_classic_recipe():
    rng = np.random.default_rng(1)
    for _ in range(20):
        eye_l, eye_r = rng.uniform(0, 50, (6, 2)) + [100, 100], rng.uniform(0, 50, (6, 2)) + [220, 110]
        m_l, m_r = rng.uniform(0, 20, 2) + [120, 260], rng.uniform(0, 20, 2) + [230, 265]
        quad = ffhq_quad(eye_l.mean(0), eye_r.mean(0), m_l, m_r)
        assert np.allclose(quad, classic_ffhq_quad(eye_l, eye_r, m_l, m_r))
        side = quad[3] - quad[0]
        assert np.isclose(np.dot(side, quad[1] - quad[0]), 0, atol=1e-6)  # a square
        assert np.isclose(np.hypot(*side), np.hypot(*(quad[1] - quad[0])))


def test_matrix_maps_quad_corners_to_crop_edges():
    quad = ffhq_quad([100, 120], [180, 110], [110, 200], [170, 195])
    for size in CROP_SIZES:
        m = quad_matrix(quad, size)
        lo, hi = -0.5, size - 0.5
        assert np.allclose(transform_points(m, quad), [[lo, lo], [lo, hi], [hi, hi], [hi, lo]])
        back = transform_points(cv2.invertAffineTransform(m), transform_points(m, quad))
        assert np.allclose(back, quad)


def test_crop_puts_eyes_level_and_centred(obama):
    image, face = obama
    for size in CROP_SIZES:
        crop = align_face(image, face, size)
        assert crop.image.shape == (size, size, 3) and crop.image.dtype == np.uint8
        eyes = transform_points(crop.matrix, eye_mouth_points(face))
        assert abs(eyes[0, 1] - eyes[1, 1]) < 0.01 * size  # level
        assert abs((eyes[0, 0] + eyes[1, 0]) / 2 - (size - 1) / 2) < 0.01 * size  # centred
        assert 0.35 * size < eyes[0, 1] < 0.5 * size and eyes[2, 1] > 0.55 * size  # eyes above, mouth below
        assert np.allclose(transform_points(crop.inverse, eyes), eye_mouth_points(face))


def test_rotated_photo_gives_the_same_crop(landmarker, obama):
    image, face = obama
    h, w = image.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0)
    rotated = cv2.warpAffine(image, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    upright = align_face(image, face, 256).image.astype(float)
    turned = align_face(rotated, landmarker.detect(rotated)[0], 256).image.astype(float)
    mse = np.mean((upright[64:192, 64:192] - turned[64:192, 64:192]) ** 2)  # the face, not the edges
    assert 10 * np.log10(255 ** 2 / mse) > 22


def test_shrink_path_matches_a_large_crop_scaled_down(landmarker, face_photo):
    image = load_image(face_photo("biden.jpg"))  # the face is ~4x the 256-px crop: area pre-shrink is used
    face = landmarker.detect(image)[0]
    small = align_face(image, face, 256).image.astype(float)
    large = cv2.resize(align_face(image, face, 1024).image, (256, 256), interpolation=cv2.INTER_AREA).astype(float)
    mse = np.mean((small[8:-8, 8:-8] - large[8:-8, 8:-8]) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 33  # no misregistration from the pre-shrink


def test_bad_crop_size_and_degenerate_quad():
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(BadInputError, match="256, 512, 1024"):
        warp_quad(image, ffhq_quad([40, 50], [60, 50], [42, 70], [58, 70]), 300)
    with pytest.raises(BadInputError, match="too small"):
        warp_quad(image, np.zeros((4, 2)), 256)


def test_partial_face_is_padded_and_flagged(landmarker, face_photo):
    image = load_image(face_photo("obama_partial_face.jpg"))
    face = landmarker.detect(image)[0]
    crop = align_face(image, face, 256)
    assert crop.quad[:, 0].min() < 0  # the crop reaches past the left edge of the photo
    assert any("outside the picture" in w for w in face_warnings(face, crop))
    # the padding is faded (FFHQ-like), not a sharp mirror image: the far-left columns are smooth
    left = crop.image[:, :10].astype(float)
    assert np.abs(np.diff(left, axis=0)).mean() < 2.0


def test_all_shared_faces_align(landmarker, faces_dir):
    names = sorted(p.name for p in faces_dir.iterdir())
    assert {"obama.jpg", "biden.jpg", "two_people.jpg", "32bit.png"} <= set(names)
    for name in names:
        image = load_image(faces_dir / name)
        faces = landmarker.detect(image)
        assert faces, name
        for face in faces:
            crop = align_face(image, face, 256)
            eyes = transform_points(crop.matrix, eye_mouth_points(face))
            assert abs(eyes[0, 1] - eyes[1, 1]) < 4, name
            assert 50 < eyes[1, 0] - eyes[0, 0] <= 64.5, name  # FFHQ: the crop is at least 4 eye distances wide


# --- the CLI ---------------------------------------------------------------------------------------------

def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_cli_align_writes_a_crop(face_photo, tmp_path, capsys):
    out = tmp_path / "crop.png"
    assert cli_main(["align", str(face_photo("obama.jpg")), "--out", str(out), "--size", "512"]) == 0
    assert load_image(out).shape == (512, 512, 3)
    assert "crop.png" in capsys.readouterr().out


def test_cli_align_all_faces(face_photo, tmp_path, capsys):
    out = tmp_path / "crop.jpg"
    assert cli_main(["align", str(face_photo("two_people.jpg")), "--out", str(out), "--all"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crop_0.jpg", "crop_1.jpg"]
    assert cli_main(["align", str(face_photo("two_people.jpg")), "--out", str(out)]) == 0
    assert out.exists() and "2 faces found" in capsys.readouterr().err


def test_cli_align_rgba_gray_16bit_exif(face_photo, tmp_path):
    rgb = load_image(face_photo("obama.jpg"), order="rgb")
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.jpg")
    cv2.imwrite(str(tmp_path / "deep.png"), rgb[:, :, ::-1].astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, k=-1))).save(tmp_path / "exif.jpg", exif=exif)
    crops = {}
    for photo in [face_photo("32bit.png"), tmp_path / "gray.jpg", tmp_path / "deep.png", tmp_path / "exif.jpg"]:
        out = tmp_path / f"crop_{photo.stem}.png"
        assert cli_main(["align", str(photo), "--out", str(out)]) == 0, photo
        crops[photo.stem] = load_image(out).astype(float)
    # the EXIF-rotated copy gives the upright crop
    reference = cv2.imread(str(tmp_path / "crop_deep.png")).astype(float)
    assert np.abs(crops["exif"] - reference)[32:224, 32:224].mean() < 8


def test_cli_align_tiny_and_partial_faces_warn(face_photo, tmp_path, capsys):
    assert cli_main(["align", str(face_photo("obama-240p.jpg")), "--out", str(tmp_path / "t.png")]) == 0
    assert "small face" in capsys.readouterr().err
    assert cli_main(["align", str(face_photo("obama_partial_face.jpg")), "--out", str(tmp_path / "p.png")]) == 0
    assert "outside the picture" in capsys.readouterr().err


def test_cli_align_no_face_is_one_line(videos_dir, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    save_image(blank, np.full((480, 640, 3), 127, np.uint8))
    assert cli_main(["align", str(blank), "--out", str(tmp_path / "o.png")]) == 2
    assert "no face found" in one_line_error(capsys)
    from engine.video import VideoReader

    with VideoReader(videos_dir / "dark_stage_clip.mp4") as reader:
        frame = [f.image for f in reader.frames(41)][-1]
    save_image(tmp_path / "dark.jpg", frame)
    assert cli_main(["align", str(tmp_path / "dark.jpg"), "--out", str(tmp_path / "o.png")]) == 2
    assert "no face found" in one_line_error(capsys)
    assert not (tmp_path / "o.png").exists()


def test_cli_align_bad_files_are_one_line(face_photo, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(face_photo("obama.jpg").read_bytes()[:300])
    assert cli_main(["align", str(corrupt), "--out", str(tmp_path / "o.png")]) == 2
    assert "corrupt" in one_line_error(capsys)
    assert cli_main(["align", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "o.png")]) == 2
    assert "not found" in one_line_error(capsys)
    assert cli_main(["align", str(face_photo("obama.jpg")), "--out", str(tmp_path / "o.png"),
                     "--model", str(tmp_path / "nope.task")]) == 2
    assert "model file not found" in one_line_error(capsys)


def test_cli_models_lists_where_models_resolve(landmarker_model, tmp_path, monkeypatch, capsys):
    assert cli_main(["models"]) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("face_landmarker")][0]
    assert str(landmarker_model) in line and "CELEBLOOK_FACE_LANDMARKER" in line and "sha256 ok" in line
    monkeypatch.delenv("CELEBLOOK_FACE_LANDMARKER")
    monkeypatch.delenv("CELEBLOOK_MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cli_main(["models"]) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("face_landmarker")][0]
    assert "MISSING" in line and str(tmp_path) in line and "--download face_landmarker" in line
    assert cli_main(["models", "--download", "nonsense"]) == 2
    assert "unknown model" in one_line_error(capsys)
