"""The range of skin colours real face photos show: the band a morph target's photographed colours are kept in.

    python -m training.evaluate.skin_range --json docs/results/skin_range.json     # 1,500 photos, ~2 min on 2 cores

Over UTKFace training photos (never the held-out split), the face oval's mean colour (engine.paste.lab_stats, as the
paste-back reads it) in CIELAB lightness, chroma and hue; greyscale photos (chroma < 3) are left out. The band
engine.inversion.skin_tone.SKIN_RANGE keeps a target's colours in is printed: lightness 1-99 % (where people's skin
differs most, so only the rarest exposures are moved), chroma and hue 2.5-97.5 % (which vary more with the camera's
white balance and saturation than between people).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from engine.atomic import atomic_path
from engine.benchmark import provenance
from engine.inversion.skin_tone import lch
from engine.landmarks import FaceLandmarker
from engine.paste import lab_stats
from training.data.utkface import UTK_DIR, align_photo, split_names

GREY = 3.0  # chroma below this: a greyscale photo


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=1500, help="UTKFace training photos to read")
    ap.add_argument("--json", type=Path, help="write the percentiles here")
    args = ap.parse_args(argv)
    means = []
    with FaceLandmarker() as lm:
        for name in split_names("train", limit=args.photos):
            found = align_photo(lm, cv2.imread(str(UTK_DIR / name)))
            if found is not None:
                crop, valid, oval, _ = found
                means.append(lab_stats(crop, oval & valid)[0])
    values = lch(np.array(means))  # (n, 3): L*, chroma, hue
    colour = values[values[:, 1] >= GREY]
    table = {k: np.round(np.percentile(colour[:, i], [1, 2.5, 50, 97.5, 99]), 1).tolist()
             for i, k in enumerate(("lightness", "chroma", "hue"))}
    print(f"{len(values)} faces, {len(values) - len(colour)} greyscale left out; percentiles 1 / 2.5 / 50 / 97.5 / 99:")
    for k, v in table.items():
        print(f"  {k:9s} " + " / ".join(f"{x:.1f}" for x in v))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps({"faces": len(values), "greyscale": len(values) - len(colour),
                                             "percentiles": [1, 2.5, 50, 97.5, 99], **table,
                                             **provenance("training.evaluate.skin_range", argv)}, indent=1))


if __name__ == "__main__":
    main()
