"""Export the text-editing models to ONNX for the engine, check each against torch, record them in the manifest.

    python -m training.export.clip --distill runs/clip_distill/last.pt --mapper runs/clip_mapper/last.pt \
        --strength runs/clip_strength/last.pt [--clip-model ViT-B-32 --clip-pretrained laion2b_s34b_b79k]

Writes into --out-dir (default resources/models, where the desktop app looks for the first two):
  clip_text_encoder.onnx   tokens (B, 77) int64 -> embedding (B, D) unit; metadata: context_length, templates
  clip_bpe_vocab.txt.gz    open_clip's BPE vocabulary, verbatim (MIT, OpenAI) for engine/clip_tokenizer.py
  clip_wplus_mapper.onnx   embedding (B, D) -> wplus (B, 23, 512)
  clip_strength.onnx       wplus (B, 23, 512), image_embedding (B, D), direction (B, D) -> strength (B,)
  clip_image_encoder.onnx  image (B, 3, S, S) RGB [0, 1] -> embedding (B, D); metadata: input_size

Why a text encoder and not a cache of prompt deltas: the desktop prompt box takes any text. The engine tokenises
with a pure-Python copy of CLIP's BPE (engine/clip_tokenizer.py: open_clip's tokenizer imports torch).
The files are not shipped (manifest `shipped: false`): the ViT-B/32 text tower alone is ~250 MB in fp32, and
nothing trained from a random CLIP may pose as a model. Entries get their sha256 when exported here.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.atomic import write_json_atomic
from engine.models import MANIFEST_PATH, MODELS_DIR, sha256_file
from engine.text_edit import MODEL_FILES, TEMPLATES
from training.export.generator import OPSET

DOC = "docs/TEXT.md"
REGENERATE = {
    "clip_text_encoder": f"export it from real CLIP weights on a machine with internet: python -m "
                         f"training.models.clip_teacher --fetch && python -m training.export.clip ({DOC})",
    "clip_bpe_vocab": f"python -m training.export.clip (copied from the open_clip package, {DOC})",
    "clip_wplus_mapper": f"train on a GPU machine with internet: python -m training.train.clip_mapper, then "
                         f"python -m training.export.clip ({DOC})",
    "clip_strength": f"train on a GPU machine with internet: python -m training.train.strength_predictor, then "
                     f"python -m training.export.clip ({DOC})",
    "clip_image_encoder": f"train on a GPU machine with internet: python -m training.train.clip_distill, then "
                          f"python -m training.export.clip ({DOC})",
}
DESCRIPTION = {
    "clip_text_encoder": "OpenCLIP text tower, tokens (B,77) int64 -> unit embedding (B,D)",
    "clip_bpe_vocab": "CLIP byte-level BPE vocabulary (bpe_simple_vocab_16e6.txt.gz from open_clip)",
    "clip_wplus_mapper": "CSLA-style mapper f: CLIP embedding (B,D) -> W+ (B,23,512) around w_avg",
    "clip_strength": "text-edit strength predictor: (W+, image embedding, text direction) -> C",
    "clip_image_encoder": "E_I distilled from the CLIP image encoder: aligned face RGB [0,1] -> unit embedding (B,D)",
}
LICENCE = {
    "clip_text_encoder": "MIT (OpenCLIP code) + the licence of the chosen CLIP weights (LAION: MIT)",
    "clip_bpe_vocab": "MIT (OpenAI CLIP, via open_clip)",
}


def stub_entries() -> dict[str, dict]:
    """Manifest entries for models that do not exist yet: no sha256, not shipped, how to build them."""
    return {name: {"file": MODEL_FILES[name], "sha256": "", "bytes": 0, "source": DESCRIPTION[name] + "; not built",
                   "licence": LICENCE.get(name, "Apache-2.0 (CelebLook); trained against CLIP weights (see source)"),
                   "regenerate": REGENERATE[name], "shipped": False} for name in MODEL_FILES}


def register_stubs() -> None:
    """Add the stub entries of the CLIP models that have no entry yet (keeps every other entry)."""
    data = json.loads(MANIFEST_PATH.read_text())
    for name, e in stub_entries().items():
        data["models"].setdefault(name, e)
    write_json_atomic(MANIFEST_PATH, data)


# ---------------------------------------------------------------------------------------------------- ONNX
class TextTower(nn.Module):
    def __init__(self, clip_model: nn.Module):
        super().__init__()
        self.model = clip_model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.encode_text(tokens), dim=-1)


class StrengthGraph(nn.Module):
    def __init__(self, predictor: nn.Module):
        super().__init__()
        self.p = predictor

    def forward(self, wplus, image_embedding, direction):
        return self.p(wplus, image_embedding, direction)


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
            meta: dict | None = None) -> Path:
    import onnx

    tmp = path.with_suffix(".tmp.onnx")
    axes = {n: {0: "batch"} for n in inputs + outputs}
    with torch.no_grad():
        torch.onnx.export(module.eval(), args, str(tmp), input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)
    proto = onnx.load(str(tmp))
    for k, v in (meta or {}).items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = k, str(v)
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def export_text_encoder(teacher, out_dir: Path) -> dict[str, Path]:
    """The teacher's text tower + the BPE vocabulary file."""
    from open_clip.tokenizer import default_bpe

    n = teacher.context_length
    path = _export(TextTower(teacher.model), (torch.zeros(2, n, dtype=torch.long),), out_dir / MODEL_FILES[
        "clip_text_encoder"], ["tokens"], ["embedding"],
        {"clip": teacher.name, "context_length": n, "embed_dim": teacher.embed_dim,
         "templates": json.dumps(list(TEMPLATES))})
    vocab = out_dir / MODEL_FILES["clip_bpe_vocab"]
    shutil.copyfile(default_bpe(), vocab)
    return {"clip_text_encoder": path, "clip_bpe_vocab": vocab}


def export_mapper(mapper, out_dir: Path, meta: dict | None = None) -> Path:
    return _export(mapper, (torch.randn(2, mapper.embed_dim),), out_dir / MODEL_FILES["clip_wplus_mapper"],
                   ["embedding"], ["wplus"], {"embed_dim": mapper.embed_dim, **(meta or {})})


def export_strength(predictor, embed_dim: int, out_dir: Path, meta: dict | None = None) -> Path:
    args = (torch.randn(2, 23, 512), F.normalize(torch.randn(2, embed_dim), dim=-1),
            F.normalize(torch.randn(2, embed_dim), dim=-1))
    return _export(StrengthGraph(predictor), args, out_dir / MODEL_FILES["clip_strength"],
                   ["wplus", "image_embedding", "direction"], ["strength"], {"c_max": predictor.c_max, **(meta or {})})


def export_image_encoder(student, out_dir: Path, meta: dict | None = None) -> Path:
    s = student.input_size
    return _export(student, (torch.rand(2, 3, s, s),), out_dir / MODEL_FILES["clip_image_encoder"], ["image"],
                   ["embedding"], {"input_size": s, "input": "RGB in [0, 1], FFHQ-style aligned crop resized to "
                                   "input_size", **(meta or {})})


def parity(module: nn.Module, path: Path, feeds: dict[str, torch.Tensor]) -> float:
    """Max abs difference ONNX Runtime vs torch on `feeds` (first output)."""
    from engine.onnx_session import make_session

    with torch.no_grad():
        ref = module.eval()(*feeds.values())
    got = make_session(path, 1).run(None, {k: v.numpy() for k, v in feeds.items()})[0]
    return float(np.abs(got - ref.numpy()).max())


def export_all(out_dir: Path, teacher=None, student=None, mapper=None, predictor=None) -> dict[str, dict]:
    """Export whatever is given, check parity (raises on failure); returns {name: {path, parity}}."""
    from engine.clip_tokenizer import ClipTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    dims = {m.embed_dim for m in (teacher, mapper) if m is not None}
    if student is not None:
        dims.add(student.project.out_features)
    if len(dims) > 1:
        raise SystemExit(f"embedding sizes differ between the models: {sorted(dims)} (same CLIP teacher?)")
    d = dims.pop() if dims else 512
    g = torch.Generator().manual_seed(0)
    report: dict[str, dict] = {}
    if teacher is not None:
        paths = export_text_encoder(teacher, out_dir)
        tokens = torch.from_numpy(ClipTokenizer(paths["clip_bpe_vocab"], teacher.context_length)(
            ["man with glasses", "a photo of a face."]))
        report["clip_text_encoder"] = {"path": paths["clip_text_encoder"],
                                       "parity": parity(TextTower(teacher.model), paths["clip_text_encoder"],
                                                        {"tokens": tokens})}
        report["clip_bpe_vocab"] = {"path": paths["clip_bpe_vocab"], "parity": 0.0}
    if mapper is not None:
        p = export_mapper(mapper, out_dir, {"clip": getattr(teacher, "name", "")})
        report["clip_wplus_mapper"] = {"path": p, "parity": parity(mapper, p, {
            "embedding": F.normalize(torch.randn(3, d, generator=g), dim=-1)}) / max(1.0, float(mapper.w_std.max()))}
    if predictor is not None:
        p = export_strength(predictor, d, out_dir)
        feeds = {"wplus": predictor.w_avg + predictor.w_std * torch.randn(3, 23, 512, generator=g),
                 "image_embedding": F.normalize(torch.randn(3, d, generator=g), dim=-1),
                 "direction": F.normalize(torch.randn(3, d, generator=g), dim=-1)}
        report["clip_strength"] = {"path": p, "parity": parity(StrengthGraph(predictor), p, feeds)}
    if student is not None:
        p = export_image_encoder(student, out_dir)
        s = student.input_size
        report["clip_image_encoder"] = {"path": p, "parity": parity(student, p, {
            "image": torch.rand(2, 3, s, s, generator=g)})}
    bad = {k: v["parity"] for k, v in report.items() if v["parity"] > 1e-3}
    if bad:
        raise SystemExit(f"ONNX parity check failed: {bad}")
    return report


def update_manifest_entries(report: dict[str, dict], teacher_name: str) -> None:
    data = json.loads(MANIFEST_PATH.read_text())
    for name, r in report.items():
        path = Path(r["path"])
        e = stub_entries()[name]
        e.update(sha256=sha256_file(path), bytes=path.stat().st_size,
                 source=f"{DESCRIPTION[name]}; CLIP teacher {teacher_name}")
        data["models"][name] = e
    write_json_atomic(MANIFEST_PATH, data)


def main(argv: list[str] | None = None) -> None:
    from training.train.clip_distill import load_student
    from training.train.clip_mapper import load_mapper
    from training.models.clip_teacher import ClipWeightsMissing, load_clip
    from training.train.strength_predictor import load_predictor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip-model", default="ViT-B-32")
    ap.add_argument("--clip-pretrained", default="laion2b_s34b_b79k")
    ap.add_argument("--clip-weights", help="local .safetensors / .bin instead of the HF cache")
    ap.add_argument("--distill", type=Path, help="clip_distill checkpoint")
    ap.add_argument("--mapper", type=Path, help="clip_mapper checkpoint")
    ap.add_argument("--strength", type=Path, help="strength_predictor checkpoint")
    ap.add_argument("--no-text", action="store_true", help="skip the text encoder")
    ap.add_argument("--out-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--register-stubs", action="store_true", help="only add the manifest entries of the CLIP models")
    args = ap.parse_args(argv)
    if args.register_stubs:
        register_stubs()
        return
    teacher = None
    if not args.no_text:
        try:
            teacher = load_clip(args.clip_model, args.clip_pretrained, local_path=args.clip_weights,
                                allow_download=False)
        except ClipWeightsMissing as exc:
            raise SystemExit(f"error: {exc}")
    report = export_all(args.out_dir, teacher,
                        load_student(args.distill) if args.distill else None,
                        load_mapper(args.mapper) if args.mapper else None,
                        load_predictor(args.strength) if args.strength else None)
    for name, r in report.items():
        p = Path(r["path"])
        print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB), parity vs torch {r['parity']:.2e}")
    if args.out_dir.resolve() == MODELS_DIR.resolve():
        update_manifest_entries(report, teacher.name if teacher else f"{args.clip_model}/{args.clip_pretrained}")


if __name__ == "__main__":
    main()
