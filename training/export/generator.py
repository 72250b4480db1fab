"""Export the converted MobileStyleGAN to ONNX for the engine and record the files in the model manifest.

    python -m training.export.generator            # synthesis + mapping + w_avg into resources/models/
    python -m training.export.generator --preview  # 256- and 512-px synthesis with the distilled preview heads
    python -m training.export.generator --live     # the live view's distilled 256-px generator

Outputs (resources/models/):
  mobilestylegan_synthesis.onnx  wplus (B, 23, 512) float32 -> image (B, 3, 1024, 1024) RGB in ~[-1, 1]
  mobilestylegan_mapping.onnx    z (B, 512) -> w (B, 512)
  w_avg.npy                      (512,) mean of 16384 mapped z (seed 0)
  mobilestylegan_synthesis_256.onnx / _512.onnx  wplus -> image (B, 3, 256 | 512, 256 | 512), stopping after
                                 block 4 / 5 with the heads of training/train/preview_heads.py
  mobilestylegan_live_256.onnx   wplus -> image (B, 3, 256, 256): blocks 3-4 narrowed and distilled
                                 (training/train/live_generator.py), under 1 GMAC
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from engine.models import MANIFEST_PATH, MODELS_DIR
from training.convert.generator import load_weights
from training.export.manifest import entry, update_manifest
from training.models.mobilestylegan import N_SLOTS, STYLE_DIM

OPSET = 17


def export(module: torch.nn.Module, example: torch.Tensor, path: Path, in_name: str, out_name: str) -> None:
    """torch -> ONNX with a dynamic batch axis; written atomically."""
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(module, (example,), str(tmp), input_names=[in_name], output_names=[out_name],
                      dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}}, opset_version=OPSET,
                      dynamo=False)
    tmp.replace(path)


class PreviewSynthesis(torch.nn.Module):
    """The synthesis network stopped after `block`, rendered by its preview head."""

    def __init__(self, synthesis: torch.nn.Module, block: int):
        super().__init__()
        self.synthesis, self.block = synthesis, block

    def forward(self, wplus: torch.Tensor) -> torch.Tensor:
        return self.synthesis(wplus, out_block=self.block)


def export_preview(out: Path) -> None:
    """Export the 256- and 512-px synthesis models (needs resources/models/preview_heads.safetensors)."""
    from training.train.preview_heads import load_preview_heads

    model = load_preview_heads(load_weights())
    entries = {}
    for block, size in ((4, 256), (5, 512)):
        path = out / f"mobilestylegan_synthesis_{size}.onnx"
        with torch.no_grad():
            export(PreviewSynthesis(model.synthesis, block).eval(), torch.zeros(1, N_SLOTS, STYLE_DIM), path,
                   "wplus", "image")
        entries[f"mobilestylegan_synthesis_{size}"] = entry(
            path, f"MobileStyleGAN synthesis stopped after block {block} with our distilled preview head, "
                  f"W+ (B,23,512) -> RGB {size}")
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if out == MODELS_DIR:
        for e in entries.values():
            e["regenerate"] = "python -m training.train.preview_heads && python -m training.export.generator --preview"
        update_manifest(entries)


def export_live(out: Path) -> None:
    """Export the live-view generator (needs resources/models/live_generator_fp16.safetensors)."""
    from training.train.live_generator import LIVE_CHANNELS, load_live_synthesis

    path = out / "mobilestylegan_live_256.onnx"
    with torch.no_grad():
        export(load_live_synthesis(), torch.zeros(1, N_SLOTS, STYLE_DIM), path, "wplus", "image")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if out == MODELS_DIR:
        weights = json.loads(MANIFEST_PATH.read_text())["models"].get("live_generator_fp16", {})
        e = entry(path, f"live-view MobileStyleGAN at 256 px: the released blocks 0-2, blocks 3-4 narrowed to "
                        f"{LIVE_CHANNELS[4:]} channels and distilled from the released 1024-px output "
                        f"(live_generator_fp16.safetensors), W+ (B,23,512) -> RGB 256")
        # the trained weights' provenance (their data and its terms) carries over to the network made from them
        e |= {k: weights[k] for k in ("licence", "data") if k in weights}
        e["regenerate"] = weights.get("regenerate", "python -m training.train.live_generator") + \
            " && python -m training.export.generator --live"
        update_manifest({"mobilestylegan_live_256": e})  # the weights' own entry is the training leg's


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--preview", action="store_true", help="export the 256/512-px preview synthesis models only")
    ap.add_argument("--live", action="store_true", help="export the live view's distilled generator only")
    args = ap.parse_args(argv)
    if args.live:
        export_live(args.out_dir)
        return
    if args.preview:
        export_preview(args.out_dir)
        return
    model = load_weights()
    out = args.out_dir
    synthesis, mapping = out / "mobilestylegan_synthesis.onnx", out / "mobilestylegan_mapping.onnx"
    with torch.no_grad():
        export(model.synthesis, torch.zeros(1, N_SLOTS, STYLE_DIM), synthesis, "wplus", "image")
        export(model.mapping, torch.zeros(1, STYLE_DIM), mapping, "z", "w")
    w_avg = out / "w_avg.npy"
    np.save(w_avg, model.w_avg.numpy().astype(np.float32))
    if out == MODELS_DIR:
        update_manifest({
            "mobilestylegan_synthesis": entry(synthesis, "MobileStyleGAN synthesis, W+ (B,23,512) -> RGB 1024"),
            "mobilestylegan_mapping": entry(mapping, "MobileStyleGAN mapping network z -> w"),
            "w_avg": entry(w_avg, "mean W of 16384 mapped z, seed 0"),
        })
    for p in (synthesis, mapping, w_avg):
        print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
