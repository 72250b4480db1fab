"""Make the figures of docs/ALIGNMENT.md (contact sheet, comparison with dlib) and print its tables.

Tables: quads against dlib's recipe; per photo, detection / crop / paste-back time and the PSNR of the
round trip of an unmodified crop inside the face oval (docs/BENCHMARKS.md).

    python -m training.evaluate.alignment_figures ../shared/data/faces

The dlib comparison needs `dlib` (PyPI: dlib-bin) and the 68-point model from `face-recognition-models`
(pip install --target /tmp/dlibpkgs dlib-bin face-recognition-models; not a project dependency). Without them
it compares only against MediaPipe points mapped to dlib's 68-point definitions.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from engine.align import align_face, face_quad, ffhq_quad, transform_points, warp_quad
from engine.image_io import load_image, save_image
from engine.landmarks import FACE_OVAL, MOUTH_LEFT, MOUTH_RIGHT, FaceLandmarker
from engine.paste import paste_back

# dlib 68-point eye contours (36..41 image-left eye, 42..47 image-right eye) as MediaPipe mesh indices
DLIB68_RIGHT_EYE = (33, 160, 158, 133, 153, 144)
DLIB68_LEFT_EYE = (362, 385, 387, 263, 373, 380)
GREEN, RED, BLUE = (60, 200, 60), (40, 40, 230), (230, 140, 30)


def quad_dlib68_from_mediapipe(face) -> np.ndarray:
    """The FFHQ quad with MediaPipe points picked to match dlib's 68 (6-point eyes, mouth corners)."""
    xy = face.xy
    return ffhq_quad(xy[list(DLIB68_RIGHT_EYE)].mean(0), xy[list(DLIB68_LEFT_EYE)].mean(0),
                     xy[MOUTH_RIGHT], xy[MOUTH_LEFT])


def load_dlib():
    """(detector, predictor) or None when dlib or its 68-point model is not importable."""
    try:
        import dlib
        import importlib.util
        spec = importlib.util.find_spec("face_recognition_models")
        model = Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat"
        return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model))
    except Exception as exc:  # noqa: BLE001 - optional tool
        print(f"dlib not available ({exc}); comparing with MediaPipe points mapped to dlib's 68", file=sys.stderr)
        return None


def quads_dlib(image_bgr: np.ndarray, dlib_models) -> list[np.ndarray]:
    """FFHQ quads from dlib's 68 landmarks, exactly as ffhq-dataset computes them."""
    detector, predictor = dlib_models
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    quads = []
    for rect in detector(rgb, 1):  # upsample once, as ffhq-dataset does
        lm = np.array([(p.x, p.y) for p in predictor(rgb, rect).parts()], np.float64)
        quads.append(ffhq_quad(lm[36:42].mean(0), lm[42:48].mean(0), lm[48], lm[54]))
    return quads


def quad_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(centre offset in % of a's side, side ratio b/a, rotation difference in degrees)."""
    side_a, side_b = np.hypot(*(a[3] - a[0])), np.hypot(*(b[3] - b[0]))
    offset = 100 * np.hypot(*(b.mean(0) - a.mean(0))) / side_a
    angle = np.degrees(np.arctan2(*(b[3] - b[0])[::-1]) - np.arctan2(*(a[3] - a[0])[::-1]))
    return float(offset), float(side_b / side_a), float((angle + 180) % 360 - 180)


def draw_quad(image: np.ndarray, quad: np.ndarray, color, thickness: int) -> None:
    pts = np.round(quad).astype(np.int32)
    cv2.polylines(image, [pts], True, color, thickness, cv2.LINE_AA)
    cv2.line(image, tuple(pts[0]), tuple(pts[3]), color, thickness * 2, cv2.LINE_AA)  # top edge thicker


def thumbnail(image: np.ndarray, height: int) -> np.ndarray:
    scale = height / image.shape[0]
    return cv2.resize(image, (max(1, round(image.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)


def label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def letterbox(image: np.ndarray, tile: int) -> np.ndarray:
    """Fit an image into a white tile x tile square."""
    scale = tile / max(image.shape[:2])
    small = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    out = np.full((tile, tile, 3), 255, np.uint8)
    y, x = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def contact_sheet(photos: list[Path], landmarker: FaceLandmarker, tile: int = 192, columns: int = 4) -> np.ndarray:
    """A grid of (photo with the face's crop quad, aligned 256-px crop) pairs, one per face."""
    pairs = []
    for path in photos:
        image = load_image(path)
        for i, face in enumerate(landmarker.detect(image)):
            shown = image.copy()
            draw_quad(shown, face_quad(face), GREEN, max(2, max(image.shape[:2]) // 250))
            crop = cv2.resize(align_face(image, face, 256).image, (tile, tile), interpolation=cv2.INTER_AREA)
            name = path.name if i == 0 else f"{path.name} #{i + 1}"
            pairs.append(np.hstack([label(letterbox(shown, tile), name), crop, np.full((tile, 6, 3), 255, np.uint8)]))
    while len(pairs) % columns:
        pairs.append(np.full_like(pairs[0], 255))
    rows = [np.hstack(pairs[i:i + columns]) for i in range(0, len(pairs), columns)]
    return np.vstack([np.vstack([r, np.full((6, r.shape[1], 3), 255, np.uint8)]) for r in rows])


def zoom(image: np.ndarray, quads: list[np.ndarray], tile: int) -> tuple[np.ndarray, float, np.ndarray]:
    """The part of the photo around the quads, scaled to tile x tile; returns (zoom, scale, origin)."""
    pts = np.vstack(quads)
    centre = pts.mean(0)
    half = 0.6 * (pts.max(0) - pts.min(0)).max()
    m = np.array([[tile / (2 * half), 0, tile / 2 - centre[0] * tile / (2 * half)],
                  [0, tile / (2 * half), tile / 2 - centre[1] * tile / (2 * half)]])
    return cv2.warpAffine(image, m, (tile, tile), flags=cv2.INTER_AREA, borderValue=(255, 255, 255)), m


def comparison(path: Path, landmarker: FaceLandmarker, dlib_models, tile: int = 256) -> tuple[np.ndarray, list]:
    """Zoomed photo with both quads (green: ours, red: dlib recipe), the two crops and their difference x4."""
    image = load_image(path)
    face = landmarker.detect(image)[0]
    ours, mapped = face_quad(face), quad_dlib68_from_mediapipe(face)
    dlib_quads = quads_dlib(image, dlib_models) if dlib_models else []
    reference = min(dlib_quads, key=lambda q: np.hypot(*(q.mean(0) - ours.mean(0)))) if dlib_quads else mapped
    shown, m = zoom(image, [ours, reference], tile)
    draw_quad(shown, transform_points(m, reference), RED, 1)
    draw_quad(shown, transform_points(m, ours), GREEN, 1)
    a, b = warp_quad(image, ours, 256).image, warp_quad(image, reference, 256).image
    diff = np.clip(np.abs(a.astype(int) - b.astype(int)) * 4, 0, 255).astype(np.uint8)
    name = "dlib 68 (classic recipe)" if dlib_quads else "MediaPipe as dlib-68"
    panels = [label(shown, f"{path.name}: green ours, red dlib"), label(a, "ours (MediaPipe)"), label(b, name),
              label(diff, "|difference| x4")]
    return np.hstack(panels), [quad_difference(reference, ours), quad_difference(reference, mapped)]


def median_ms(fn, runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def timing_rows(path: Path, landmarker: FaceLandmarker) -> list[str]:
    """Markdown rows: detect ms, then per crop size crop ms / paste ms and round-trip PSNR in the face oval."""
    image = load_image(path)
    faces = landmarker.detect(image)
    detect = median_ms(lambda: landmarker.detect(image), 7)
    rows = []
    for i, face in enumerate(faces):
        oval = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(oval, [np.round(face.xy[list(FACE_OVAL)]).astype(np.int32)], 1)
        cells = [path.name + ("" if i == 0 else f" #{i + 1}"), f"{image.shape[1]}×{image.shape[0]}", f"{detect:.1f}"]
        for size in (256, 1024):
            crop = align_face(image, face, size)
            pasted = paste_back(image, crop.image, crop, face)
            mse = np.mean((pasted.astype(float) - image)[oval > 0] ** 2)
            cells.append(f"{median_ms(lambda: align_face(image, face, size)):.2f} / "
                         f"{median_ms(lambda: paste_back(image, crop.image, crop, face)):.2f}, "
                         f"{10 * np.log10(255 ** 2 / max(mse, 1e-10)):.1f} dB")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faces", type=Path, help="folder of photos (../shared/data/faces)")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--compare", default="obama.jpg,biden.jpg", help="photos shown in the dlib comparison")
    args = parser.parse_args()
    photos = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    dlib_models = load_dlib()
    with FaceLandmarker(max_faces=4) as landmarker:
        sheet = contact_sheet(photos, landmarker)
        save_image(args.out / "align_contact_sheet.jpg", sheet, jpeg_quality=80)
        rows = []
        print("| photo | ours vs dlib: centre offset % side, side ratio, angle ° | MediaPipe-as-dlib-68 vs dlib |")
        print("|---|---|---|")
        for path in photos:
            panel, (d_ours, d_mapped) = comparison(path, landmarker, dlib_models)
            if path.name in args.compare.split(","):
                rows.append(panel)
            print(f"| {path.name} | {d_ours[0]:.1f}, {d_ours[1]:.3f}, {d_ours[2]:+.1f} | "
                  f"{d_mapped[0]:.1f}, {d_mapped[1]:.3f}, {d_mapped[2]:+.1f} |")
        print("\n| photo | size | detect ms | 256: crop / paste ms, PSNR | 1024: crop / paste ms, PSNR |")
        print("|---|---|---|---|---|")
        for path in photos:
            print("\n".join(timing_rows(path, landmarker)))
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        save_image(args.out / "align_vs_dlib.jpg", np.vstack(rows), jpeg_quality=80)
    for name in ("align_contact_sheet.jpg", "align_vs_dlib.jpg"):
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
