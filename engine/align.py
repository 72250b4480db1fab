"""FFHQ-style face alignment: the classic quad from eye centres and mouth corners, one similarity warp.

The quad is the recipe of the FFHQ dataset (Karras et al., ffhq-dataset `recreate_aligned_images`), fed
with MediaPipe points instead of dlib's 68: each eye centre is the mean of its 16-point contour, the mouth
corners are mesh points 61 and 291. The crop is a single cv2.warpAffine of the quad onto a square
(with an area-averaged pre-shrink for big faces, like FFHQ's shrink step), and the returned Crop carries
the frame -> crop matrix so a generated face can be put back (engine.paste). docs/ALIGNMENT.md compares
the result with the dlib recipe.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import BadInputError, NoFaceError
from engine.landmarks import LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, RIGHT_EYE, Face

CROP_SIZES = (256, 512, 1024)
MIN_VISIBLE_FRACTION = 0.5  # a face with fewer of its landmarks inside the picture is not used
SOFT_UPSCALE = 2.0  # a crop enlarged more than this from the photo gets a warning


@dataclass(frozen=True)
class Crop:
    """An aligned square face crop. `matrix` (2x3) maps frame pixels to crop pixels; `quad` (4, 2) holds the
    crop's corners in the frame (top-left, bottom-left, bottom-right, top-right)."""

    image: np.ndarray
    matrix: np.ndarray
    quad: np.ndarray

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def inverse(self) -> np.ndarray:
        """2x3 matrix mapping crop pixels back to frame pixels."""
        return cv2.invertAffineTransform(self.matrix)

    @property
    def center(self) -> np.ndarray:
        """Centre of the crop in frame pixels."""
        return self.quad.mean(axis=0)


def eye_mouth_points(face: Face) -> np.ndarray:
    """(4, 2): image-left eye centre, image-right eye centre, image-left mouth corner, image-right mouth corner
    (the roles of dlib's mean(36:42), mean(42:48), 48 and 54)."""
    xy = face.xy
    return np.stack([xy[list(RIGHT_EYE)].mean(axis=0), xy[list(LEFT_EYE)].mean(axis=0),
                     xy[MOUTH_RIGHT], xy[MOUTH_LEFT]]).astype(np.float64)


def ffhq_quad(eye_left: np.ndarray, eye_right: np.ndarray, mouth_left: np.ndarray,
              mouth_right: np.ndarray) -> np.ndarray:
    """The FFHQ crop quad (4, 2) from two eye centres and two mouth corners (image left/right), in pixels."""
    eye_left, eye_right, mouth_left, mouth_right = (np.asarray(p, np.float64) for p in
                                                    (eye_left, eye_right, mouth_left, mouth_right))
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


def face_quad(face: Face) -> np.ndarray:
    """The FFHQ quad of a MediaPipe face."""
    return ffhq_quad(*eye_mouth_points(face))


def quad_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity mapping the quad's corners onto the edges of a size x size image (pixel centres at
    integers, so corners land on -0.5 and size - 0.5, as FFHQ's PIL QUAD transform does)."""
    quad = np.asarray(quad, np.float64)
    c = quad.mean(axis=0)
    x = (quad[3] - quad[0]) / 2.0  # half side, pointing right
    y = (quad[1] - quad[0]) / 2.0  # half side, pointing down
    half = np.hypot(*x)
    if half < 1e-6:
        raise BadInputError("face too small to align (degenerate crop quad)")
    scale = size / (2.0 * half)
    rot = np.stack([x / half, y / np.hypot(*y)])  # rows: crop x and y axes in frame coordinates
    linear = rot * scale
    offset = (size - 1) / 2.0 - linear @ c
    return np.hstack([linear, offset[:, None]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def compose_affine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of x -> a(b(x)) for 2x3 affine matrices a and b."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]


def quad_inside(quad: np.ndarray, image_size: tuple[int, int]) -> bool:
    """True when the whole quad lies inside an image of (width, height)."""
    w, h = image_size
    return bool(np.all(quad >= -0.5) and np.all(quad[:, 0] <= w - 0.5) and np.all(quad[:, 1] <= h - 0.5))


def warp_quad(image: np.ndarray, quad: np.ndarray, size: int = 256, blur_padding: bool = True) -> Crop:
    """Cut the quad out of `image` as a size x size square.

    A face more than twice the output size is first shrunk with area averaging (only its bounding box),
    then warped bilinearly; pixels outside the photo are mirrored (BORDER_REFLECT) and, with `blur_padding`,
    blurred and faded to the crop's median colour as FFHQ does."""
    if size not in CROP_SIZES:
        raise BadInputError(f"crop size must be one of {', '.join(map(str, CROP_SIZES))}, not {size}")
    quad = np.asarray(quad, np.float64)
    matrix = quad_matrix(quad, size)
    src, src_to_frame = _shrunk_source(image, quad, matrix)
    warp = compose_affine(matrix, src_to_frame)
    crop = cv2.warpAffine(src, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    h, w = image.shape[:2]
    if blur_padding and not quad_inside(quad, (w, h)):
        crop = _blur_outside(crop, src, warp)
    return Crop(image=crop, matrix=matrix, quad=quad)


def align_face(image: np.ndarray, face: Face, size: int = 256, blur_padding: bool = True) -> Crop:
    """The aligned FFHQ-style crop of one detected face."""
    return warp_quad(image, face_quad(face), size, blur_padding)


def crop_points(face: Face, crop: Crop) -> np.ndarray:
    """The face's landmarks in the crop's own units (478, 3) float32: x, y in [0, 1] across the crop, z scaled
    like x and y (frame pixels -> crop pixels -> / crop size). The same for a photo and for a render."""
    scale = float(np.hypot(*crop.matrix[0, :2]))  # crop pixels per frame pixel
    xy = transform_points(crop.matrix, face.points[:, :2]) / crop.size
    z = face.points[:, 2:3] * scale / crop.size
    return np.concatenate([xy, z], axis=1).astype(np.float32)


def usable_faces(faces: list[Face], min_visible: float = MIN_VISIBLE_FRACTION) -> list[Face]:
    """The faces with at least `min_visible` of their landmarks inside the picture (order kept)."""
    return [f for f in faces if f.visible_fraction >= min_visible]



def require_usable_faces(faces: list[Face], source: str = "the image") -> list[Face]:
    """usable_faces(faces), largest first, or NoFaceError saying whether none was found or none is usable."""
    if not faces:
        raise NoFaceError(f"no face found in {source}")
    usable = usable_faces(faces)
    if not usable:
        raise NoFaceError(f"no usable face in {source}: the only faces found are mostly outside the picture")
    return usable

def face_warnings(face: Face, crop: Crop) -> list[str]:
    """Plain-language caveats about a crop: face partly outside the picture, or small and upscaled."""
    warnings = []
    if face.visible_fraction < 1.0:
        warnings.append(f"partly outside the picture ({100 * face.visible_fraction:.0f}% of landmarks inside); "
                        "the missing part of the crop is padded")
    side = float(np.hypot(*(crop.quad[3] - crop.quad[0])))
    if crop.size / side > SOFT_UPSCALE:
        warnings.append(f"small face: its crop area is {side:.0f} px across in the picture, enlarged "
                        f"{crop.size / side:.1f}x to {crop.size} px, so the crop will look soft")
    return warnings


def _shrunk_source(image: np.ndarray, quad: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image to warp from and its 2x3 map to frame pixels: the whole frame, or for a big face its
    bounding box shrunk by an integer factor with INTER_AREA (so the bilinear warp does not alias)."""
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    scale = float(np.hypot(*matrix[0, :2]))  # crop pixels per frame pixel
    shrink = int(np.floor(1.0 / scale)) if scale > 0 else 1
    if shrink < 2:
        return image, identity
    h, w = image.shape[:2]
    margin = 2 * shrink
    x0, y0 = np.floor(quad.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + margin
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 * shrink or y1 - y0 < 2 * shrink:
        return image, identity
    roi = image[y0:y1, x0:x1]
    rw, rh = max(1, round((x1 - x0) / shrink)), max(1, round((y1 - y0) / shrink))
    small = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
    fx, fy = rw / (x1 - x0), rh / (y1 - y0)
    # small pixel u sits at frame x = (u + 0.5) / fx - 0.5 + x0
    to_frame = np.array([[1 / fx, 0, 0.5 / fx - 0.5 + x0], [0, 1 / fy, 0.5 / fy - 0.5 + y0]])
    return small, to_frame


def _blur_outside(crop: np.ndarray, src: np.ndarray, warp: np.ndarray, work: int = 128) -> np.ndarray:
    """FFHQ-like padding: fade the mirrored area outside the photo into a blur and the median colour.
    Everything but the final blend runs at `work` px, so the cost stays small at 1024 px."""
    size = crop.shape[0]
    to_work = np.array([[work / size, 0, 0.5 * work / size - 0.5], [0, work / size, 0.5 * work / size - 0.5]])
    inside = cv2.warpAffine(np.full(src.shape[:2], 255, np.uint8), compose_affine(to_work, warp), (work, work),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 127
    if inside.all() or not inside.any():
        return crop
    small = cv2.resize(crop, (work, work), interpolation=cv2.INTER_AREA)
    dist = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 3)
    fade = np.clip(dist / (0.1 * work), 0.0, 1.0)[:, :, None]  # 0 at the photo's edge, 1 a tenth further out
    median = np.median(small[inside], axis=0).astype(np.float32)
    blurred = cv2.GaussianBlur(small, (0, 0), sigmaX=0.02 * work).astype(np.float32)
    padding = np.clip(blurred + (median - blurred) * fade + 0.5, 0, 255).astype(np.uint8)
    weight = np.clip(fade[:, :, 0] * 3.0, 0.0, 1.0)
    padding = cv2.resize(padding, (size, size), interpolation=cv2.INTER_LINEAR)
    weight = cv2.resize(weight, (size, size), interpolation=cv2.INTER_LINEAR)
    return cv2.blendLinear(padding, crop, weight, 1.0 - weight)
