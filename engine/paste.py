"""Paste-back: warp a generated face crop into the original frame under a feathered face-oval mask,
after matching its colours to the frame (mean/std in Lab inside the mask), so no border shows.

The match is a share: 1 gives the face the frame's colours (the user's own face, re-rendered); the rest of the way
goes to given colours (a morph target's photo: matched to the user's frame, a dark-skinned target came out in the
user's skin, and the render's own colours are off by ΔE 13 on average; docs/MORPH.md "The target's complexion"),
or, without them, stays the render's own.

Works on the face's bounding box only, so its cost follows the face size, not the frame size.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.align import Crop, compose_affine
from engine.landmarks import FACE_OVAL, Face


@dataclass(frozen=True)
class PasteOptions:
    """`feather`: width of the soft mask edge as a fraction of the face width; `color_match`: how far (0..1) the
    pasted face's Lab mean/std inside the mask moves to the frame's (1: all the way), the rest of the way to
    `colours` ((2, 3): 8-bit Lab mean and std, lab_stats; None: the render's own); `max_gain`: bound on the std
    ratio; `grow`: the face oval scaled about its centre before masking (> 1 also replaces the face's outline: a
    morph to another face shows the target's jaw and cheeks, not the user's; docs/MORPH.md measures it); `lift`:
    the oval's upper half raised toward the hairline by this share of its height, along the face's own up (MediaPipe's
    oval ends mid-forehead: a target's face showed a band of the user's forehead above it)."""

    feather: float = 0.08
    color_match: float = 1.0
    colours: np.ndarray | None = None
    max_gain: float = 2.0
    grow: float = 1.0
    lift: float = 0.0


def paste_back(frame: np.ndarray, face_image: np.ndarray, crop: Crop, face: Face,
               options: PasteOptions = PasteOptions(), also: np.ndarray | None = None) -> np.ndarray:
    """Return a copy of `frame` (uint8 BGR) with `face_image` (square uint8 BGR, any size, aligned like
    `crop`) warped back in place of `face`; `also`: a second outline (N, 2, frame pixels) to replace, e.g. the
    rendered face's own when an edit turned the head away from the photo's outline (both grown by options.grow)."""
    out = frame.copy()
    ovals = [_oval(face, options.grow, options.lift, crop)] + ([_grown(also, options.grow)] if also is not None else [])
    roi = _face_roi(np.concatenate(ovals), crop, frame.shape)
    if roi is None:
        return out
    x0, y0, x1, y1 = roi
    face_to_roi = _face_image_to_frame(crop, face_image.shape[0])
    face_to_roi[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(face_image, face_to_roi, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    covered = cv2.warpAffine(np.full(face_image.shape[:2], 255, np.uint8), face_to_roi, size,
                             flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # the oval where the face image has pixels, feathered along every edge: a grown oval can reach past a tight
    # crop (a still's chin), and there the face must fade out too, not end in a straight cut
    mask = feathered_mask([o - (x0, y0) for o in ovals], (size[1], size[0]), _feather_px(face, options),
                          inside=covered)
    target = out[y0:y1, x0:x1]
    if options.color_match > 0.0 or options.colours is not None:
        warped = match_colors(warped, target, mask > 0.5, options.max_gain, options.color_match, options.colours)
    m = mask[:, :, None]
    blended = warped.astype(np.float32) * m + target.astype(np.float32) * (1.0 - m)
    out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out


def feathered_mask(polygons: np.ndarray | list[np.ndarray], shape: tuple[int, int], feather_px: float,
                   inside: np.ndarray | None = None, inset_px: float = 0.0) -> np.ndarray:
    """Float32 mask of `shape` (h, w): 0 outside the polygon (or the union of a list of them; and where the uint8
    mask `inside` is 0, when given) and within `inset_px` of its edge, rising smoothly (smoothstep of the distance
    to the nearest such edge) to 1 at `inset_px + feather_px` pixels inside."""
    mask = np.zeros(shape, np.uint8)
    polygons = [polygons] if isinstance(polygons, np.ndarray) else polygons
    for polygon in polygons:
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 255)
    if inside is not None:
        mask &= inside
    ramp = np.clip((cv2.distanceTransform(mask, cv2.DIST_L2, 5) - inset_px) / max(feather_px, 1.0), 0.0, 1.0)
    return ramp * ramp * (3.0 - 2.0 * ramp)


def lab_stats(bgr: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(2, 3): the 8-bit Lab (as OpenCV scales it) mean and std of a uint8 BGR image inside a mask."""
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2Lab)
    return np.stack([v.ravel() for v in cv2.meanStdDev(lab, mask=region.astype(np.uint8))])


def match_colors(source: np.ndarray, target: np.ndarray, region: np.ndarray, max_gain: float = 2.0,
                 share: float = 1.0, colours: np.ndarray | None = None) -> np.ndarray:
    """`source` (uint8 BGR) with its Lab mean/std inside `region` moved `share` of the way to those of `target` there
    and the rest to `colours` (lab_stats; None: the source's own), the mean linearly, the std geometrically
    (8-bit Lab: cheap, and exact enough for a colour shift)."""
    region = region.astype(np.uint8)
    if np.count_nonzero(region) < 16:
        return source
    src = cv2.cvtColor(source, cv2.COLOR_BGR2Lab)
    s_mean, s_std = (v.ravel() for v in cv2.meanStdDev(src, mask=region))
    t_mean, t_std = lab_stats(target, region)
    o_mean, o_std = (s_mean, s_std) if colours is None else colours
    mean = o_mean + share * (t_mean - o_mean)
    std = np.maximum(o_std, 1e-3) ** (1.0 - share) * np.maximum(t_std, 1e-3) ** share
    gain = np.clip(std / np.maximum(s_std, 1e-3), 1.0 / max_gain, max_gain)
    affine = np.hstack([np.diag(gain), (mean - s_mean * gain)[:, None]])  # per channel: gain * x + offset
    return cv2.cvtColor(cv2.transform(src, affine), cv2.COLOR_Lab2BGR)


def _oval(face: Face, grow: float, lift: float = 0.0, crop: Crop | None = None) -> np.ndarray:
    """(36, 2) face-oval points in frame pixels, scaled by `grow` about their centre; with `lift`, the points above
    the centre moved up (the crop's up: the face's own) by up to `lift` x the oval's height, in proportion to their
    height above the centre."""
    points = _grown(face.xy[list(FACE_OVAL)], grow)
    if lift <= 0.0 or crop is None:
        return points
    up = crop.quad[0] - crop.quad[1]  # the crop's left edge, bottom to top
    up = up / max(float(np.hypot(*up)), 1e-6)
    height = (points - points.mean(axis=0)) @ up
    span = max(float(height.max() - height.min()), 1e-6)
    rise = lift * span * np.clip(height / (span / 2), 0.0, 1.0)
    return points + rise[:, None] * up


def _grown(points: np.ndarray, grow: float) -> np.ndarray:
    centre = points.mean(axis=0)
    return centre + grow * (points - centre)


def _feather_px(face: Face, options: PasteOptions) -> float:
    x0, _, x1, _ = face.bbox
    return max(1.0, options.feather * (x1 - x0))


def _face_image_to_frame(crop: Crop, face_size: int) -> np.ndarray:
    """2x3 map from pixels of a face image of side `face_size` (aligned like `crop`) to frame pixels."""
    s = crop.size / face_size  # face-image pixel u sits at crop pixel (u + 0.5) * s - 0.5
    to_crop = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5]])
    return compose_affine(crop.inverse, to_crop)


def _face_roi(oval: np.ndarray, crop: Crop, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Integer box (x0, y0, x1, y1) around the face oval, inside the frame and no more than a few pixels past the
    crop's quad (so the crop's edge, where the face image ends, lies inside the box and is feathered)."""
    h, w = shape[:2]
    (x0, y0), (x1, y1) = oval.min(axis=0), oval.max(axis=0)
    qx0, qy0 = crop.quad.min(axis=0) - 4
    qx1, qy1 = crop.quad.max(axis=0) + 4
    x0, y0 = int(np.floor(max(x0 - 2, qx0, 0))), int(np.floor(max(y0 - 2, qy0, 0)))
    x1, y1 = int(np.ceil(min(x1 + 2, qx1, w))), int(np.ceil(min(y1 + 2, qy1, h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


# MediaPipe mesh points whose motion a stale face catches up with (the lips, outer and inner, and the jaw line) and
# points held still (eyes, nose, brows and the upper face oval): a lagging render's mouth follows the newest frame
MOVING = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,  # outer lips
          78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191,  # inner lips
          361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132)  # jaw line
STILL = (33, 133, 159, 145, 263, 362, 386, 374, 1, 4, 6, 168, 197, 70, 105, 107, 300, 334, 336,  # eyes, nose, brows
         10, 338, 297, 332, 284, 251, 389, 356, 454, 234, 127, 162, 21, 54, 103, 67, 109)  # upper face oval


PRIOR = float(np.exp(-2.0))  # catch_up's weight of "stay put": that of a point two blend widths away


def catch_up(face_image: np.ndarray, then_points: np.ndarray, now_points: np.ndarray, sigma: float = 0.06,
             step: int = 8) -> np.ndarray:
    """`face_image` (square, aligned like a crop) rendered from an earlier frame, warped so its mouth and jaw move
    as the user's did since: `then_points` and `now_points` are the user's (478, 2) landmarks in the face image's
    pixels at that frame and now (each in its own frame's aligned crop, so head motion is already taken out). The
    lips and jaw line (MOVING) move by the user's change; the eyes, nose and upper face (STILL) stay; elsewhere the
    displacement is a Gaussian blend (width `sigma` x the image side) that fades to nothing away from the mouth,
    so only the box around the lower face is resampled (the blend on a lattice every `step` px, then resized)."""
    size = face_image.shape[0]
    now = np.asarray(now_points, np.float32)[:, :2]
    moving = now[list(MOVING)]
    shift = moving - np.asarray(then_points, np.float32)[list(MOVING), :2]
    if not np.isfinite(shift).all() or np.abs(shift).max() < 0.25:
        return face_image
    width = sigma * size
    reach = 3.5 * width + float(np.abs(shift).max())  # beyond this the blend has faded to < 0.2 px
    x0, y0 = np.maximum(np.floor(moving.min(axis=0) - reach), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(moving.max(axis=0) + reach) + 1, size).astype(int)
    centres = np.concatenate([moving, now[list(STILL)]]) - (x0, y0)
    moves = np.concatenate([shift, np.zeros((len(STILL), 2), np.float32)])
    ys, xs = np.mgrid[0:y1 - y0 + step:step, 0:x1 - x0 + step:step].astype(np.float32)
    d2 = (xs.reshape(-1, 1) - centres[:, 0]) ** 2 + (ys.reshape(-1, 1) - centres[:, 1]) ** 2
    w = np.exp(-d2 / (2.0 * width ** 2))
    # a zero-displacement prior (PRIOR, the weight of a point two widths away): far from every point the face stays
    field = (w @ moves / (w.sum(axis=1, keepdims=True) + PRIOR)).reshape(*xs.shape, 2).astype(np.float32)
    field = cv2.resize(field, (xs.shape[1] * step, xs.shape[0] * step), interpolation=cv2.INTER_LINEAR)
    field = field[:y1 - y0, :x1 - x0]
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    out = face_image.copy()
    # each output pixel takes the content from where it was (backward map: the shift at the destination)
    out[y0:y1, x0:x1] = cv2.remap(face_image, gx - field[..., 0], gy - field[..., 1], cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return out


# the inner lips' ring (MediaPipe mesh), in order: image-left corner, lower lip, image-right corner, upper lip
INNER_LIPS = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
MOUTH_OPEN = (0.15, 0.35)  # inner-lip gap / mouth width over which the user's mouth's inside fades in


def live_mouth(face_image: np.ndarray, user_crop: np.ndarray, points: np.ndarray, share: float = 1.0,
               feather: float = 0.012, inset: float = 0.006) -> np.ndarray:
    """`face_image` with the inside of the user's open mouth (teeth, tongue, the dark gap) from `user_crop`, this
    frame's aligned crop (any size, aligned like the face image), inside the user's inner lips `points` ((478, 2),
    in the face image's pixels). A generated face follows the user's mouth late and only part of the way; its lips,
    caught up (catch_up), sit where the user's are now, and this fills the opening between them with what the
    user's shows now, so the mouth opens and closes with every frame. `share` (0..1): how much of it shows;
    `feather` and `inset` (fractions of the side): the soft edge, kept that far inside the inner lips so the
    generated lips stay whole."""
    size = face_image.shape[0]
    ring = np.asarray(points, np.float32)[list(INNER_LIPS), :2]
    gap = float(np.linalg.norm(ring[15] - ring[5]))  # 13 (upper) to 14 (lower), mid-lip
    width = float(np.linalg.norm(ring[10] - ring[0]))  # 308 to 78, the corners
    if not np.isfinite(ring).all() or width < 1.0:
        return face_image
    opacity = share * float(np.clip((gap / width - MOUTH_OPEN[0]) / (MOUTH_OPEN[1] - MOUTH_OPEN[0]), 0.0, 1.0))
    if opacity == 0.0:  # closed (a ramp, not a switch: speech's small openings fade in and out without popping)
        return face_image
    pad = int(np.ceil(feather * size)) + 2
    x0, y0 = np.maximum(np.floor(ring.min(axis=0)) - pad, 0).astype(int)
    x1, y1 = np.minimum(np.ceil(ring.max(axis=0)) + pad + 1, size).astype(int)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return face_image
    scale = size / user_crop.shape[0]  # the user's crop to the face image's pixels, only the mouth's box resampled
    user = cv2.warpAffine(user_crop, np.float32([[scale, 0, -x0], [0, scale, -y0]]), (x1 - x0, y1 - y0),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = opacity * feathered_mask(ring - (x0, y0), (y1 - y0, x1 - x0), feather * size, inset_px=inset * size)[:, :, None]
    out = face_image.copy()
    box = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(box * (1.0 - a) + user.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)
    return out
