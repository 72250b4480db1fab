"""MobileStyleGAN over onnxruntime: sample W from a seed, render W / W+ to an RGB face."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from engine.errors import BadInputError
from engine.latents import STYLE_DIM, to_wplus
from engine.models import resolve_model
from engine.onnx_session import make_session

# output resolution -> manifest name of the synthesis model
SYNTHESIS_MODELS = {1024: "mobilestylegan_synthesis", 512: "mobilestylegan_synthesis_512",
                    256: "mobilestylegan_synthesis_256"}
# the live view's 256-px generator: blocks 3-4 narrowed and distilled from the 1024-px output, < 1 GMAC
# (training/train/live_generator.py); stills, GIF export and the quality mode keep the released network
LIVE_SYNTHESIS = "mobilestylegan_live_256"


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Generator output (B, 3, H, W) in ~[-1, 1] -> uint8 RGB (B, H, W, 3)."""
    return np.clip((image + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


@dataclass
class Generator:
    """The shipped MobileStyleGAN ONNX models (synthesis, mapping) and w_avg.

    Build it with Generator.load(); `threads` is onnxruntime's intra-op thread count (0 = its default).
    """

    synthesis: object
    mapping: object
    w_avg: np.ndarray
    resolution: int = 1024  # output side in px
    name: str = SYNTHESIS_MODELS[1024]  # the synthesis model's manifest name

    @classmethod
    def load(cls, threads: int = 0, synthesis_path: str | os.PathLike | None = None,
             resolution: int = 1024, live: bool = False) -> "Generator":
        """`resolution` 1024 is the released network; 512 and 256 stop early at our distilled preview heads
        (docs/BENCHMARKS.md: about 1.4x and 2x faster); `live`: the 256-px live-view student (LIVE_SYNTHESIS)."""
        if resolution not in SYNTHESIS_MODELS or (live and resolution != 256):
            raise BadInputError(f"generator resolution must be one of {sorted(SYNTHESIS_MODELS)} (256 for the live "
                                f"generator), not {resolution}")
        name = LIVE_SYNTHESIS if live else SYNTHESIS_MODELS[resolution]
        synthesis = make_session(resolve_model(name, synthesis_path), threads)
        mapping = make_session(resolve_model("mobilestylegan_mapping"), threads)
        w_avg = np.load(resolve_model("w_avg"), allow_pickle=False).astype(np.float32)
        return cls(synthesis, mapping, w_avg, resolution, name)


    def map(self, z: np.ndarray) -> np.ndarray:
        """z (B, 512) -> w (B, 512)."""
        return self.mapping.run(None, {"z": np.asarray(z, np.float32).reshape(-1, STYLE_DIM)})[0]

    def sample_w(self, seed: int, psi: float = 0.7) -> np.ndarray:
        """A truncated W (512,) for `seed`: w_avg + psi (mapping(z) - w_avg), z ~ N(0, I) from numpy's PCG64.
        BadInputError for a negative seed or a psi that is not a finite number."""
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise BadInputError(f"the seed must be a whole number >= 0, got {seed!r}")
        if not np.isfinite(psi):
            raise BadInputError(f"psi must be a finite number (0.5-0.7 gives pleasant faces), got {psi}")
        z = np.random.default_rng(seed).standard_normal((1, STYLE_DIM)).astype(np.float32)
        return self.w_avg + psi * (self.map(z)[0] - self.w_avg)

    def synthesize(self, latent: np.ndarray) -> np.ndarray:
        """W or W+ (any shape engine.latents.to_wplus takes) -> float image (B, 3, H, W) in ~[-1, 1]."""
        return self.synthesis.run(None, {"wplus": to_wplus(latent)})[0]

    def render(self, latent: np.ndarray) -> np.ndarray:
        """One latent -> uint8 RGB (H, W, 3)."""
        return to_uint8_rgb(self.synthesize(latent))[0]
