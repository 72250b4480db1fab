"""Edit the face in a photo: invert once, then render any number of edited latents back into the photo.

The CLI (morph, edit) and the desktop app's still-photo paths share this. The generator's framing is the
FFHQ crop's framing, so a render, resized to the crop, is pasted back with the crop's inverse transform.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

import cv2
import numpy as np

from engine.generator import Generator, to_uint8_rgb
from engine.inversion.encoder import Inversion
from engine.inversion.inverter import InversionOptions, Inverter
from engine.landmarks import FACE_OVAL
from engine.paste import PasteOptions, paste_back


@dataclass
class PhotoEditor:
    """One photo and its inversion; `render` turns an edited W+ into an output image."""

    image: np.ndarray  # uint8 BGR
    inversion: Inversion
    generator: Generator
    paste_options: PasteOptions = field(default_factory=PasteOptions)  # e.g. a grown oval for head turns
    outline: object | None = None  # an IMAGE-mode FaceLandmarker: also replace the render's own face outline
    #   (an edit that turns the head moves the face off the photo's outline, which must not stay beside it)

    @classmethod
    def open(cls, image_bgr: np.ndarray, landmarker, inverter: Inverter,
             options: InversionOptions = InversionOptions(), size: int = 256,
             source: str = "the image") -> "PhotoEditor":
        """Invert the photo's largest face (NoFaceError when there is none) with `inverter` and `options`
        (Inverter.invert_photo: the one pass, the calibration, the quality mode, the skin match and the closed
        loop); edits render with the inverter's generator."""
        inversion = inverter.invert_photo(image_bgr, landmarker, options, size, source)
        return cls(image_bgr, inversion, inverter.generator)

    @property
    def wplus(self) -> np.ndarray:
        return self.inversion.wplus

    def face_crop(self, wplus: np.ndarray) -> np.ndarray:
        """Render `wplus` as a uint8 BGR face in the crop's framing and size."""
        rgb = to_uint8_rgb(self.generator.synthesize(wplus))[0]
        size = self.inversion.crop.size
        return cv2.cvtColor(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)

    def render(self, wplus: np.ndarray, paste: bool = True, colours: float | None = None) -> np.ndarray:
        """The photo with the face replaced by G(wplus) (paste=True), or the face crop alone; `colours`: how far
        the pasted face's colours move to the photo's (PasteOptions.color_match; None: paste_options')."""
        face = self.face_crop(wplus)
        if not paste:
            return face
        inv, options = self.inversion, self.paste_options
        options = options if colours is None else replace(options, color_match=colours)
        return paste_back(self.image, face, inv.crop, inv.face, options, also=self.rendered_outline(face))

    def rendered_outline(self, face_crop: np.ndarray) -> np.ndarray | None:
        """The face oval of a rendered crop in photo pixels (with `outline` set and a face found), else None."""
        if self.outline is None:
            return None
        faces = self.outline.detect(face_crop)
        if not faces:
            return None
        oval = faces[0].xy[list(FACE_OVAL)].astype(np.float32)
        return cv2.transform(oval[None], self.inversion.crop.inverse)[0]

    def sweep(self, edit: Callable[[float], np.ndarray], values: Iterable[float], paste: bool = True,
              colours: Callable[[float], float] | None = None) -> list[np.ndarray]:
        """Render edit(v) for each v (e.g. a morph strength 0 -> 0.8), pasted with colours(v) (see render):
        frames for a sweep GIF."""
        return [self.render(edit(v), paste, None if colours is None else colours(v)) for v in values]
