"""Paste-back: an unmodified crop goes back near-invisibly; edits stay inside the face; colours are matched."""
import cv2
import numpy as np
import pytest

from engine.align import align_face
from engine.image_io import load_image
from engine.landmarks import FACE_OVAL
from engine.paste import PasteOptions, feathered_mask, paste_back


def face_region(face, shape) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(face.xy[list(FACE_OVAL)]).astype(np.int32)], 1)
    return mask.astype(bool)


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    mse = np.mean((a.astype(float)[region] - b.astype(float)[region]) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


@pytest.fixture(scope="module")
def photos(landmarker, face_photo):
    out = {}
    for name in ["obama.jpg", "two_people.jpg", "obama_partial_face.jpg"]:
        image = load_image(face_photo(name))
        out[name] = image, landmarker.detect(image)
    return out


@pytest.mark.parametrize("size", [256, 1024])
def test_round_trip_of_an_unmodified_crop_is_near_invisible(photos, size):
    for name, (image, faces) in photos.items():
        for face in faces:
            crop = align_face(image, face, size)
            pasted = paste_back(image, crop.image, crop, face)
            assert psnr(pasted, image, face_region(face, image.shape)) >= 30.0, (name, size)


def test_generator_sized_output_goes_back_too(photos):
    image, faces = photos["obama.jpg"]
    crop = align_face(image, faces[0], 256)
    generated = cv2.resize(align_face(image, faces[0], 1024).image, (1024, 1024))  # a 1024-px "generator output"
    pasted = paste_back(image, generated, crop, faces[0])
    assert psnr(pasted, image, face_region(faces[0], image.shape)) >= 30.0


def test_changes_stay_inside_the_face_and_edges_are_soft(photos):
    image, faces = photos["two_people.jpg"]
    face = faces[0]
    crop = align_face(image, face, 256)
    grey = np.full_like(crop.image, 128)
    pasted = paste_back(image, grey, crop, face, PasteOptions(color_match=0.0))
    region = face_region(face, image.shape)
    changed = np.any(pasted != image, axis=2)
    assert changed[region].mean() > 0.9
    assert not changed[~region].any()  # nothing outside the face oval moves (the other person neither)
    # the feathered edge: pixels just inside the oval are blends, not the pasted grey
    eroded = cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    rim = region & ~eroded
    assert np.abs(pasted[rim].astype(int) - 128).mean() > 10


def test_colour_matching_hides_a_colour_cast(photos):
    image, faces = photos["obama.jpg"]
    face = faces[0]
    crop = align_face(image, face, 256)
    cast = np.clip(crop.image.astype(int) + (40, -20, -20), 0, 255).astype(np.uint8)  # a blue cast
    region = face_region(face, image.shape)
    plain = paste_back(image, cast, crop, face, PasteOptions(color_match=0.0))
    matched = paste_back(image, cast, crop, face)
    assert psnr(matched, image, region) > psnr(plain, image, region) + 6
    assert np.abs(matched[region].mean(axis=0) - image[region].mean(axis=0)).max() < 3


def test_a_partial_colour_match_goes_part_of_the_way(photos):
    """A morph target's face keeps its own complexion in proportion to the strength (LiveSettings.paste_colours):
    halfway, the face's mean colour lies halfway between the render's and the frame's."""
    image, faces = photos["obama.jpg"]
    face = faces[0]
    crop = align_face(image, face, 256)
    pale = np.clip(crop.image.astype(int) + 60, 0, 255).astype(np.uint8)  # a much lighter face
    inner = cv2.erode(face_region(face, image.shape).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    lightness = lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2Lab)[..., 0][inner].mean()  # noqa: E731
    own, half, frame = (lightness(paste_back(image, pale, crop, face, PasteOptions(color_match=share)))
                        for share in (0.0, 0.5, 1.0))
    assert own - frame > 30  # the render's colours kept at 0, the frame's at 1
    assert abs(half - (own + frame) / 2) < 0.1 * (own - frame)


def test_paste_returns_a_new_frame_and_handles_a_face_at_the_edge(photos):
    image, faces = photos["obama_partial_face.jpg"]
    before = image.copy()
    crop = align_face(image, faces[0], 256)
    pasted = paste_back(image, crop.image, crop, faces[0])
    assert np.array_equal(image, before) and pasted.shape == image.shape


def test_feathered_mask_is_one_inside_zero_outside():
    square = np.array([[20, 20], [80, 20], [80, 80], [20, 80]], float)
    mask = feathered_mask(square, (100, 100), 6)
    assert mask[50, 50] > 0.99 and mask[5, 5] == 0 and mask[50, 90] == 0
    assert 0.0 < mask[50, 21] < mask[50, 22] < mask[50, 24] < 1.0  # soft just inside the edge
    assert mask[50, 26] == 1.0


def test_a_grown_oval_fades_out_at_the_crop_edge_instead_of_cutting(photos):
    """obama.jpg's aligned crop ends just under the chin: an oval grown 1.3x reaches past it, and there the pasted
    face must fade into the photo, not end in a straight line (the cut a head turn in `celeblook edit` showed)."""
    image, faces = photos["obama.jpg"]
    face = faces[0]
    crop = align_face(image, face, 256)
    black = np.zeros_like(image)  # the photo's geometry on a plain frame: what is pasted shows as is
    pasted = paste_back(black, np.full_like(crop.image, 128), crop, face, PasteOptions(color_match=0.0, grow=1.3))
    bottom = int(np.ceil(crop.quad[:, 1].max()))  # the crop's last row in the photo (an upright crop here)
    x = int(crop.quad[:, 0].mean())
    column = pasted[bottom - 60:bottom + 3, x, 0].astype(int)
    assert column[-4:].max() <= 2  # at the crop's edge: the photo
    assert column[:5].min() >= 120  # well inside: the pasted face
    assert np.abs(np.diff(column)).max() <= 12  # fading gradually, no step


def test_also_replaces_the_rendered_faces_own_outline(photos):
    image, faces = photos["two_people.jpg"]
    face = faces[0]
    crop = align_face(image, face, 256)
    grey = np.full_like(crop.image, 128)
    oval = face.xy[list(FACE_OVAL)]
    moved = oval + (0.25 * (oval[:, 0].max() - oval[:, 0].min()), 0)  # a face turned toward the image's right
    plain = paste_back(image, grey, crop, face, PasteOptions(color_match=0.0))
    both = paste_back(image, grey, crop, face, PasteOptions(color_match=0.0), also=moved)
    beyond = face_region(face, image.shape) == 0
    inside_moved = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(inside_moved, [np.round(moved).astype(np.int32)], 1)
    region = beyond & cv2.erode(inside_moved, np.ones((15, 15), np.uint8)).astype(bool)
    assert region.sum() > 100
    assert not np.any(plain[region] != image[region])  # the photo's oval alone leaves the old outline there
    assert np.abs(both[region].astype(int) - 128).mean() < 3  # with the render's own outline it is replaced


def test_catch_up_moves_a_stale_faces_mouth_and_leaves_the_eyes(photos, landmarker):
    """A render from a few frames back, its mouth and jaw warped by how the user's moved since (engine.paste.catch_up):
    the lower face follows the newest landmarks, the eyes stay where they were."""
    from engine.landmarks import LEFT_EYE, RIGHT_EYE
    from engine.paste import MOVING, catch_up

    image, faces = photos["obama.jpg"]
    crop = align_face(image, faces[0], 256)
    then = cv2.transform(faces[0].xy[None].astype(np.float32), crop.matrix)[0]
    now = then.copy()
    now[list(MOVING), 1] += 6.0  # the jaw dropped by 6 px
    out = catch_up(crop.image, then, now)
    lips = then[list(MOVING)[:40]].mean(axis=0).round().astype(int)  # the lips' centre
    eyes = then[list(RIGHT_EYE) + list(LEFT_EYE)]
    ey0, ey1 = int(eyes[:, 1].min()), int(eyes[:, 1].max()) + 1
    ex0, ex1 = int(eyes[:, 0].min()), int(eyes[:, 0].max()) + 1
    assert np.abs(out[ey0:ey1, ex0:ex1].astype(int) - crop.image[ey0:ey1, ex0:ex1]).max() <= 3  # eyes: as they were
    patch = (slice(lips[1] - 10, lips[1] + 10), slice(lips[0] - 20, lips[0] + 20))
    moved = crop.image[lips[1] - 16:lips[1] + 4, lips[0] - 20:lips[0] + 20].astype(int)  # the content 6 px higher
    assert np.abs(out[patch].astype(int) - moved).mean() < 0.5 * np.abs(out[patch].astype(int)
                                                                      - crop.image[patch]).mean()
    assert catch_up(crop.image, then, then) is crop.image  # no motion: nothing to do


def test_live_mouth_shows_the_users_open_mouth_inside_the_inner_lips_only(landmarker, videos_dir):
    """engine.paste.live_mouth on d18 (mouth closed at 0 s, yawning at 2.7 s): a face image with a closed mouth
    gets the yawn's dark inside between the yawning user's inner lips, is unchanged away from them, and is
    returned as it is while the user's mouth is closed."""
    from engine.paste import INNER_LIPS, live_mouth
    from engine.video import VideoReader

    with VideoReader(videos_dir / "d18.mp4") as video:
        frames = [(f.timestamp_ms, f.image) for f in video.frames(120)]
    crops, points = [], []
    for t in (0, 2700):  # 0 s: closed; 2.7 s: the yawn
        frame = min(frames, key=lambda f: abs(f[0] - t))[1]
        face = landmarker.detect(frame)[0]
        crop = align_face(frame, face, 256)
        crops.append(crop.image)
        points.append(cv2.transform(face.xy[None].astype(np.float32), crop.matrix)[0])
    closed, yawn = crops
    out = live_mouth(closed, yawn, points[1])
    ring = points[1][list(INNER_LIPS)]
    inside = np.zeros((256, 256), np.uint8)
    cv2.fillPoly(inside, [np.round(ring).astype(np.int32)], 1)
    core = cv2.erode(inside, np.ones((9, 9), np.uint8)).astype(bool)  # well inside the lips, past the soft edge
    assert core.sum() > 100  # the yawn is wide open
    assert np.abs(out[core].astype(int) - yawn[core]).max() <= 1  # the user's own mouth there
    assert out[core].mean() < closed[core].mean() - 40  # darker than the closed lips it replaced
    outside = ~cv2.dilate(inside, np.ones((15, 15), np.uint8)).astype(bool)
    assert np.array_equal(out[outside], closed[outside])  # the rest of the face untouched
    assert live_mouth(closed, yawn, points[0]) is closed  # the user's mouth closed: nothing to show
    assert live_mouth(closed, yawn, points[1], share=0.0) is closed  # a target at full strength: none of it


def test_a_lifted_oval_reaches_up_the_forehead_and_not_past_the_chin(photos):
    """PasteOptions.lift raises the oval's top along the face's own up (MediaPipe's oval ends mid-forehead, which
    left a band of the user's forehead above a target's face); the chin and sides stay where they were."""
    image, faces = photos["obama.jpg"]
    face = faces[0]
    crop = align_face(image, face, 256)
    grey = np.full_like(crop.image, 128)
    rows = {}
    for lift in (0.0, 0.15):
        changed = np.any(paste_back(image, grey, crop, face, PasteOptions(color_match=0.0, lift=lift)) != image, axis=2)
        ys, xs = np.nonzero(changed)
        rows[lift] = ys.min(), ys.max(), xs.min(), xs.max()
    height = face.bbox[3] - face.bbox[1]
    assert rows[0.0][0] - rows[0.15][0] > 0.08 * height, rows  # the top rose by most of 15 % of the oval's height
    assert abs(rows[0.15][1] - rows[0.0][1]) <= 2 and abs(rows[0.15][2] - rows[0.0][2]) <= 0.05 * height, rows
