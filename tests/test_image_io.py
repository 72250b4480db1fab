"""Image loading and writing: every kind of photo becomes uint8 BGR, bad files become BadInputError."""
import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from engine.errors import BadInputError, CelebLookError
from engine.image_io import apply_exif_orientation, load_image, save_image


def test_rgba_png_becomes_bgr(face_photo):
    raw = cv2.imread(str(face_photo("32bit.png")), cv2.IMREAD_UNCHANGED)
    assert raw.shape[2] == 4
    image = load_image(face_photo("32bit.png"))
    assert image.dtype == np.uint8 and image.shape == raw.shape[:2] + (3,)
    rgb = load_image(face_photo("32bit.png"), order="rgb")
    assert np.array_equal(rgb[:, :, ::-1], image)


def test_transparent_pixels_are_composited_over_white(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[:, :, 0] = 200  # red
    rgba[:, 15:, 3] = 255  # right half opaque, left half transparent
    rgba[:, 10:15, 3] = 128  # a half-transparent band
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert np.all(image[:, :10] == 255)
    assert np.all(np.abs(image[:, 10:15].astype(int) - (127, 127, 227)) <= 1)
    assert np.all(image[:, 15:] == (0, 0, 200))  # BGR


def test_grayscale_and_16bit_variants_match_the_original(face_photo, tmp_path):
    original = load_image(face_photo("obama.jpg"))
    gray = cv2.cvtColor(original, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    loaded = load_image(tmp_path / "gray.png")
    assert loaded.shape == original.shape
    assert np.array_equal(loaded[:, :, 0], gray) and np.array_equal(loaded[:, :, 1], gray)

    cv2.imwrite(str(tmp_path / "deep.png"), original.astype(np.uint16) * 257)
    assert cv2.imread(str(tmp_path / "deep.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert np.array_equal(load_image(tmp_path / "deep.png"), original)

    cv2.imwrite(str(tmp_path / "gray16.png"), gray.astype(np.uint16) * 257)
    assert np.array_equal(load_image(tmp_path / "gray16.png")[:, :, 2], gray)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pil(orientation):
    pixels = np.random.default_rng(orientation).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    im = Image.fromarray(pixels)
    im.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(apply_exif_orientation(pixels, orientation), expected)


def test_exif_rotated_jpeg_is_turned_upright(face_photo, tmp_path):
    upright = load_image(face_photo("obama.jpg"), order="rgb")
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    loaded = load_image(tmp_path / "rotated.jpg", order="rgb")
    assert loaded.shape == upright.shape
    assert np.abs(loaded.astype(int) - upright).mean() < 3.0


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
                                     b"\xff\xd8\xff\xe0" + b"garbage" * 10])
def test_corrupt_files_are_bad_input(tmp_path, content):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match="broken.jpg"):
        load_image(path)


def test_truncated_jpeg_is_bad_input_or_an_image(face_photo, tmp_path):
    data = face_photo("obama.jpg").read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[:600])  # header only: no scan data
    with pytest.raises(BadInputError):
        load_image(path)
    path.write_bytes(data[: len(data) // 2])  # half the scan: refused, or decoded as far as it goes
    try:
        assert load_image(path).shape == (1137, 910, 3)
    except BadInputError as exc:
        assert "corrupt" in str(exc)


def test_missing_file_and_folder_are_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(BadInputError, match="not a file"):
        load_image(tmp_path)


def test_save_image_round_trip_and_errors(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    save_image(tmp_path / "x.png", image)
    assert np.array_equal(load_image(tmp_path / "x.png"), image)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temporary file left
    with pytest.raises(BadInputError, match="use one of"):
        save_image(tmp_path / "x.gifx", image)
    with pytest.raises(CelebLookError, match="does not exist"):
        save_image(tmp_path / "no_dir" / "x.png", image)
