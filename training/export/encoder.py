"""Export a trained inversion encoder (E_I + f) to ONNX, check it against torch, record it in the manifest.

    python -m training.export.encoder --checkpoint runs/enc_cpu/last.pt     # -> resources/models/inversion_encoder.onnx

ONNX graph: input `image` (B, 3, S, S) float32 RGB in [0, 1] (the FFHQ-style aligned crop resized to S, the
model's `input_size` stored in the graph's metadata), outputs `wplus` (B, 23, 512) and `embedding` (B, 512).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from engine.models import MODELS_DIR
from training.models.encoder import InversionEncoder, count_parameters
from training.export.generator import OPSET
from training.export.manifest import entry, update_manifest
from training.train.encoder import load_encoder

NAME = "inversion_encoder"
FILE = f"{NAME}.onnx"
PARITY_FILE = f"{NAME}_parity.npy"  # torch outputs for a fixed input, checked against ONNX Runtime by the tests
RUN = "~/.cache/celeblook/runs/enc_gpu1"
_LEG = "--batch 32 --aug-strength 0.5 --colour-strength 0 --image-every 8 --image-batch 4 --image-block 4"
_CACHES = "$D/prev6k,$D/prev6k_b,$D/prev6k_c,$D/prev6k_d,$D/cpu2k"
# the shipped model's three legs, data included (docs/ENCODER.md, "Recipe and configs"): two on the 2-core CPU from
# cached samples, the last on one H100 rendering on the fly (its samples come from the GPU's random stream and
# the workers' own augmentation seeds, so a rerun is statistically, not bit-for-bit, the same model)
REGENERATE = ("D=~/.cache/celeblook/encoder_data; R=~/.cache/celeblook/runs; "
              "python -m training.data.samples --name cpu2k --samples 800 && "
              "python -m training.data.samples --name prev6k --samples 6000 --resolution 256 --seed 1 && "
              "python -m training.data.samples --name prev6k_b --samples 6000 --resolution 256 --seed 2 && "
              "python -m training.data.samples --name prev6k_c --samples 4200 --resolution 256 --seed 3 --psi-min 0.5 && "
              "python -m training.data.samples --name prev6k_d --samples 6000 --resolution 256 --seed 4 --psi-min 0.6 && "
              "python -m training.train.encoder --preset cpu --data $D/prev6k,$D/prev6k_d,$D/cpu2k --val 400 "
              "--out $R/bb_efficientformerv2_s0 --backbone efficientformerv2_s0 --steps 1500 --lr 1e-3 --warmup 100 "
              f"{_LEG} --threads 1 && "
              f"python -m training.train.encoder --preset cpu --data {_CACHES} --val 400 "
              "--init $R/bb_efficientformerv2_s0/last.pt --out $R/enc_ef2 --thumb-size 32 --thumb-rank 128 --steps 2200 "
              f"--lr 4e-4 --warmup 50 {_LEG} --threads 2 && "
              "python -c \"from training.train.encoder import slim_checkpoint as s; "
              "s('$R/enc_ef2/last.pt', '$R/enc_ef2/slim16.pt', half=True)\" && "
              "python -m training.train.encoder --out " + RUN + " --init $R/enc_ef2/slim16.pt --thumb-size 32 "
              "--thumb-rank 128 --align-workers 14 --align-res 512 --batch 64 --image-batch 16 --lr 4e-4 --warmup 300 "
              "--steps 200000 --anneal-minutes 15 --aug-strength 0.5 --colour-strength 0 && "
              f"python -m training.export.encoder --checkpoint {RUN}/last.pt (docs/ENCODER.md)")


UTKFACE_DATA = ("UTKFace aligned & cropped (23,707 photos, ../shared/data/real-faces/utkface): image-space losses on "
                "a training subset; the 1,000 names with the lowest sha256 held out (training/data/utkface.py)")
UTKFACE_TERMS = "trained on UTKFace photos: non-commercial research use only (UTKFace's terms)"


def parity_input(size: int) -> np.ndarray:
    """The fixed test input of the shipped parity reference: uniform [0, 1), numpy PCG64 seed 0, (1, 3, S, S)."""
    return np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)


def write_parity_reference(model: InversionEncoder, path: Path) -> Path:
    """Save torch's (W+ flattened, embedding) for parity_input as one float32 row (1, 23*512 + D)."""
    with torch.no_grad():
        w, e = model.eval()(torch.from_numpy(parity_input(model.cfg.input_size)))
    np.save(path, torch.cat([w.flatten(1), e], dim=1).numpy().astype(np.float32))
    return path


def export_encoder(model: InversionEncoder, path: Path, metadata: dict | None = None) -> Path:
    """torch -> ONNX (dynamic batch), with input_size and config in the model metadata; written atomically."""
    import onnx

    model = model.eval()
    s = model.cfg.input_size
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(model, (torch.rand(1, 3, s, s),), str(tmp), input_names=["image"],
                          output_names=["wplus", "embedding"],
                          dynamic_axes={"image": {0: "batch"}, "wplus": {0: "batch"}, "embedding": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    proto = onnx.load(str(tmp))
    meta = {"input_size": str(s), "input": "RGB in [0, 1], FFHQ-style aligned crop (engine.align) resized to input_size",
            "encoder_config": json.dumps(model.cfg.__dict__), **{k: str(v) for k, v in (metadata or {}).items()}}
    for k, v in meta.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = k, v
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def parity(model: InversionEncoder, path: Path, batch: int = 2, seed: int = 0) -> dict:
    """Max abs difference of ONNX Runtime vs torch on random images (W+ and embedding)."""
    from engine.onnx_session import make_session

    s = model.cfg.input_size
    x = torch.rand(batch, 3, s, s, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        w_t, e_t = model.eval()(x)
    w_o, e_o = make_session(path, 1).run(None, {"image": x.numpy()})
    return {"wplus_max_abs": float(np.abs(w_o - w_t.numpy()).max()),
            "embedding_max_abs": float(np.abs(e_o - e_t.numpy()).max()),
            "wplus_scale": float(np.abs(w_t.numpy()).max())}


def trained_on_utkface(config: dict) -> bool:
    """Whether a training run's config read UTKFace photos (image losses or pseudo-targets): their
    non-commercial terms then travel with the model."""
    return bool(config.get("real") or config.get("pseudo"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--out-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--description", default="", help="what the model was trained on (goes into the manifest)")
    ap.add_argument("--regenerate", default="", help="the manifest's regenerate command (default: the shipped legs')")
    args = ap.parse_args(argv)
    model = load_encoder(args.checkpoint)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = export_encoder(model, args.out_dir / FILE, {"train_steps": state["step"]})
    report = parity(model, path)
    write_parity_reference(model, args.out_dir / PARITY_FILE)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {count_parameters(model) / 1e6:.2f} M parameters); "
          f"parity vs torch: {report}")
    if report["wplus_max_abs"] > 1e-3 * max(1.0, report["wplus_scale"]):
        raise SystemExit(f"ONNX parity check failed: {report}")
    real = trained_on_utkface(state.get("config") or {})
    if args.out_dir == MODELS_DIR:
        e = entry(path, "Inversion encoder E_I + f: aligned face (B,3,S,S) RGB [0,1] -> W+ (B,23,512) and "
                        f"embedding (B,512); {model.cfg.backbone} (random init) at {model.cfg.input_size} px, trained "
                        f"data-free on the generator ({args.description or 'see docs/ENCODER.md'})")
        e["source"] = e["source"].replace("; official", "; generator: official")
        e["licence"] = "Apache-2.0 (CelebLook; timm architecture, random init); " + e["licence"]
        e["regenerate"] = args.regenerate or REGENERATE
        if real:  # trained on real photos too: their terms travel with the model
            e["data"] = UTKFACE_DATA
            e["licence"] += "; " + UTKFACE_TERMS
        update_manifest({NAME: e})
        # the float16 torch weights of what is now shipped (the next leg's warm start), with their own entry
        from training.convert.encoder_from_onnx import FP16_FILE, parity_against_reference, save_fp16, \
            write_manifest_entry
        save_fp16(model, FP16_FILE)
        write_manifest_entry(FP16_FILE, 0, parity_against_reference(
            __import__("training.convert.encoder_from_onnx", fromlist=["load_fp16"]).load_fp16(FP16_FILE)),
            origin=f"exported from the training checkpoint {args.checkpoint.name} (step {state['step']})")


if __name__ == "__main__":
    main()
