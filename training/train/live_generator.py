"""Distil a live-view generator: MobileStyleGAN at 256 px with under 1 GMAC, for the live loop's face refreshes.

    python -m training.train.live_generator [--samples 400] [--minutes 45] [--batch 4]               # a CPU leg, resumable
    python -m training.train.live_generator --real 240 --real-val 16 --w-id 1 --lr 2.5e-4          # + real-face targets
    python -m training.train.live_generator --device cuda --samples 8000 --real 2000 --batch 32 --minutes 10 --w-id 1

Why: the 256-px preview (blocks 0-4 + a distilled head) costs 3.57 GMAC, 78 % of it in blocks 3 and 4 (64 and
128 px, 512 and 256 channels), and on 2 cores that caps the face at ~7 refreshes/s. The student keeps the
teacher's blocks 0-2 exactly (0.49 GMAC, frozen) and narrows block 3 to LIVE_CHANNELS[4] and block 4 to
LIVE_CHANNELS[5] channels, initialised by pruning the teacher (the channel groups that carry the most activation;
block 4's input is block 3's output read as Haar sub-bands, so block 3 keeps whole groups of four), then trained
against the *full* 1024-px generator's output area-downsampled to 256 px (L1 + MSE + 1 - MS-SSIM), so it can come
out closer to the released network than the preview head, which only re-learned a 1x1 head.

W+ codes are drawn like the encoder's training targets (training/data/samples.py: truncation, per-slot noise,
style mixing). Block 2's features (fp16) and the targets are cached once under runs/live_generator/ (about 1.4 MB
per sample); checkpoints there make every leg resumable (`--minutes` per leg), and on a machine without them the
leg warm-starts from the slim fp16 weights kept in the repository (resources/models/live_generator_fp16.safetensors,
which every leg rewrites). `--w-id` adds the face recogniser's identity loss (the pixel losses alone leave the
face less recognisable than the preview head: docs/BENCHMARKS.md). `--real N` mixes in (`--real-share` of each
batch) the codes the live view renders toward a dropped photo: N UTKFace photos inverted like the app's targets,
each driven by random head poses and expressions (training/data/morph_targets.py; non-commercial research terms then
apply to the weights); the encoder-like draws alone left the student unable to render a refined celebrity target
(Biden's: 16.7 dB, dlib 0.38 against the preview head's 18.3 dB, 0.23). The ONNX export is
`python -m training.export.generator --live`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.atomic import write_json_atomic
from engine.models import MANIFEST_PATH, MODELS_DIR
from training.convert.generator import load_weights
from training.data.morph_targets import driven_codes, group_size, invert_targets
from training.models.encoder import ms_ssim
from training.models.mobilestylegan import CHANNELS, MobileStyleGAN, SynthesisNetwork, slot_of, wavelets_to_image

LIVE_CHANNELS = (512, 512, 512, 512, 240, 48)  # conv1, blocks 0-2 as the teacher; block 3: 240, block 4: 48 (-> 256 px)
FROZEN_BLOCKS = 3  # blocks 0..2 are the teacher's own, unchanged (the cache holds their output)
WEIGHTS_PATH = MODELS_DIR / "live_generator_fp16.safetensors"
RUN_DIR = Path("runs/live_generator")


def live_synthesis() -> SynthesisNetwork:
    """The student's shape (random weights): 5 blocks, its last block's wavelet head renders 256 px."""
    return SynthesisNetwork(LIVE_CHANNELS)


def _rows(src: torch.Tensor, keep: torch.Tensor | None, dim: int) -> torch.Tensor:
    return src if keep is None else src.index_select(dim, keep)


def _copy_styled(dst, src, keep_in: torch.Tensor | None, keep_out: torch.Tensor | None) -> None:
    """StyledConv (depthwise-separable) with input channels `keep_in` and output channels `keep_out` of `src`."""
    c = dst.conv
    c.modulation.affine.weight.copy_(_rows(src.conv.modulation.affine.weight, keep_in, 0))
    c.modulation.affine.bias.copy_(_rows(src.conv.modulation.affine.bias, keep_in, 0))
    c.modulation.gain = src.conv.modulation.gain  # the teacher's fan-in scaling, not the pruned one
    c.weight_dw.copy_(_rows(src.conv.weight_dw, keep_in, 0))
    c.weight_pw.copy_(_rows(_rows(src.conv.weight_pw, keep_out, 0), keep_in, 1))
    dst.noise.copy_(src.noise)
    dst.bias.copy_(_rows(src.bias, keep_out, 1))


def haar_groups(keep_low: torch.Tensor, channels: int) -> torch.Tensor:
    """Channels of a `channels`-wide map that an IDWT reads as sub-bands of the kept outputs `keep_low`:
    output j is made of channel j (LL) and channels C/4 + 3j + (0, 1, 2) (LH, HL, HH)."""
    q = channels // 4
    high = q + 3 * keep_low[:, None] + torch.arange(3)
    return torch.cat([keep_low, high.flatten()])


@torch.no_grad()
def prune_from_teacher(teacher: SynthesisNetwork, wplus: torch.Tensor) -> SynthesisNetwork:
    """The student initialised from the teacher: blocks 0-2 copied, blocks 3-4 keep the channels (groups) with the
    largest RMS activation on `wplus` (B, 23, 512); block 4's head from the teacher's block-4 preview head."""
    student = live_synthesis()
    student.input.copy_(teacher.input)
    student.conv1.load_state_dict(teacher.conv1.state_dict())
    for i in range(FROZEN_BLOCKS):
        student.layers[i].load_state_dict(teacher.layers[i].state_dict())
    x3 = teacher.features(wplus, 3)  # (B, 512, 64, 64)
    x4 = teacher.features(wplus, 4)  # (B, 256, 128, 128)
    rms3 = x3.pow(2).mean((0, 2, 3)).sqrt()
    q = x3.shape[1] // 4
    group_rms = rms3[:q] + rms3[q:].view(q, 3).sum(1)  # one score per IDWT output channel of block 4
    keep_low = group_rms.topk(LIVE_CHANNELS[4] // 4).indices.sort().values
    keep3 = haar_groups(keep_low, x3.shape[1])  # block 3's kept outputs, in the student's order
    keep4 = x4.pow(2).mean((0, 2, 3)).sqrt().topk(LIVE_CHANNELS[5]).indices.sort().values
    t3, s3 = teacher.layers[3], student.layers[3]
    s3.up.load_state_dict(t3.up.state_dict())
    _copy_styled(s3.conv1, t3.conv1, None, keep3)
    _copy_styled(s3.conv2, t3.conv2, keep3, keep3)
    t4, s4 = teacher.layers[4], student.layers[4]
    s4.up.modulation.affine.weight.copy_(t4.up.modulation.affine.weight[keep3])
    s4.up.modulation.affine.bias.copy_(t4.up.modulation.affine.bias[keep3])
    s4.up.modulation.gain = t4.up.modulation.gain
    _copy_styled(s4.conv1, t4.conv1, keep_low, keep4)
    _copy_styled(s4.conv2, t4.conv2, keep4, keep4)
    head = teacher.preview_heads["4"]
    s4.to_img.conv.modulation.affine.weight.copy_(head.conv.modulation.affine.weight[keep4])
    s4.to_img.conv.modulation.affine.bias.copy_(head.conv.modulation.affine.bias[keep4])
    s4.to_img.conv.modulation.gain = head.conv.modulation.gain
    s4.to_img.conv.weight.copy_(head.conv.weight[:, keep4] * (256 / LIVE_CHANNELS[5]) ** 0.5)
    s4.to_img.bias.copy_(head.bias)
    return student


def tail(student: SynthesisNetwork, x2: torch.Tensor, wplus: torch.Tensor) -> torch.Tensor:
    """Blocks 3-4 and the head from block 2's features (B, 512, 32, 32) -> RGB (B, 3, 256, 256)."""
    x = x2
    for i in (3, 4):
        x = student.layers[i](x, wplus[:, slot_of(i, "up")], wplus[:, slot_of(i, "conv2")])
    return wavelets_to_image(student.layers[4].to_img(x, wplus[:, slot_of(4, "head")]))


def draw_codes(model: MobileStyleGAN, n: int, seed: int) -> torch.Tensor:
    """n W+ codes drawn like the encoder's training targets (training/data/samples.py)."""
    from training.data.samples import SampleRecipe, sample_wplus, w_stats

    mapping = lambda z: model.mapping(torch.from_numpy(z)).numpy()  # noqa: E731
    with torch.no_grad():
        w_avg, w_std = w_stats(mapping)
        wplus, _ = sample_wplus(np.random.default_rng(seed), mapping, model.w_avg.numpy(), w_std, n, SampleRecipe())
    return torch.from_numpy(wplus)


@torch.no_grad()
def build_cache(model: MobileStyleGAN, n: int, more_codes, path: Path, threads: int,
                device: torch.device = torch.device("cpu")) -> dict:
    """Block-2 features (fp16), 256-px targets from the full 1024-px generator (fp16) and the codes; saved
    every 100 samples, so an interrupted build resumes. `more_codes(have, need)` gives codes have..have+need-1
    (an extension keeps the cached ones). The 1024-px renders run on onnxruntime on a CPU (faster there than
    torch) and on the torch teacher on a GPU."""
    from engine.generator import Generator

    cache = torch.load(path, weights_only=True) if path.is_file() else None
    if cache is not None and len(cache["x2"]) >= n:
        return {k: v[:n] for k, v in cache.items()}
    feats = list(cache["x2"].split(4)) if cache is not None else []
    targets = list(cache["target"].split(4)) if cache is not None else []
    codes = cache["wplus"][:4 * len(feats)] if cache is not None else torch.zeros(0, 23, 512)
    if len(codes) < n:
        codes = torch.cat([codes, torch.as_tensor(more_codes(len(codes), n - len(codes)))])
    n = len(codes)  # a source may hold fewer codes than asked for
    if device.type == "cpu":
        onnx = Generator.load(threads)
        render = lambda w: torch.from_numpy(onnx.synthesize(w.numpy()))  # noqa: E731
    else:
        teacher = model.to(device)
        render = lambda w: teacher.synthesis(w.to(device)).float().cpu()  # noqa: E731
    t0 = time.time()

    def save() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"wplus": codes, "x2": torch.cat(feats), "target": torch.cat(targets)}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)

    for i in range(4 * len(feats), n, 4):
        w = codes[i:i + 4]
        feats.append(model.synthesis.features(w.to(next(model.parameters()).device), FROZEN_BLOCKS - 1).half().cpu())
        image = render(w)
        targets.append(F.interpolate(image, size=(256, 256), mode="area").half())
        if (i // 4) % 25 == 24:
            save()
            print(f"cache {i + len(w)}/{n} ({time.time() - t0:.0f} s)", flush=True)
    save()
    return {"wplus": codes, "x2": torch.cat(feats), "target": torch.cat(targets)}


def drawn(model: MobileStyleGAN, seed: int):
    """Encoder-like codes for build_cache: a new seed per extension, so earlier codes keep their features."""
    return lambda have, need: draw_codes(model, need, seed + 1000 * have)


def real_targets(split: str, count: int, per_target: int, threads: int):
    """Real-face codes for build_cache (training/data/morph_targets.py): UTKFace photos inverted like the app's
    dropped photos, each at rest and driven by `per_target` random head poses and expressions, and the person as
    the live loop sees them (as themself, and blended toward their driven target)."""
    k = group_size(per_target, True)

    def more(have: int, need: int) -> np.ndarray:
        first, last = have // k, -(-(have + need) // k)
        photos = invert_targets(split, count, threads)
        codes = driven_codes(photos["wplus"][first:last], per_target, 0 if split == "train" else 1, first,
                             photos["user"][first:last])
        return codes[have - first * k:][:need]

    return more


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(4.0 / F.mse_loss(a.clamp(-1, 1), b.clamp(-1, 1))))


def save_slim(student: SynthesisNetwork, path: Path) -> None:
    """The trainable part (blocks 3-4 with the head) as fp16 safetensors; blocks 0-2 are the released weights."""
    from safetensors.torch import save_file

    state = {k: v.half().contiguous() for k, v in student.state_dict().items()
             if k.startswith(("layers.3.", "layers.4."))}
    gains = {k: torch.tensor(m.gain) for k, m in student.named_modules() if hasattr(m, "gain")
             and k.startswith(("layers.3.", "layers.4."))}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state | {f"{k}.gain": v for k, v in gains.items()}, str(path.with_suffix(".tmp")))
    path.with_suffix(".tmp").replace(path)


def load_live_synthesis(path: Path = WEIGHTS_PATH, teacher: MobileStyleGAN | None = None) -> SynthesisNetwork:
    """The trained student (float32): blocks 0-2 from the released weights, blocks 3-4 from `path`."""
    from safetensors.torch import load_file

    teacher = teacher or load_weights()
    student = live_synthesis()
    student.input.data.copy_(teacher.synthesis.input)
    student.conv1.load_state_dict(teacher.synthesis.conv1.state_dict())
    for i in range(FROZEN_BLOCKS):
        student.layers[i].load_state_dict(teacher.synthesis.layers[i].state_dict())
    state = load_file(str(path))
    modules = dict(student.named_modules())
    for k in [k for k in state if k.endswith(".gain")]:
        modules[k[: -len(".gain")]].gain = float(state.pop(k))
    missing = student.load_state_dict({k: v.float() for k, v in state.items()}, strict=False).missing_keys
    if any(k.startswith(("layers.3.", "layers.4.")) for k in missing):
        raise ValueError(f"{path} lacks {[k for k in missing if k.startswith(('layers.3.', 'layers.4.'))][:3]}")
    return student.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1200, help="training codes (block-2 features cached, fp16)")
    ap.add_argument("--val", type=int, default=48, help="held-out codes (another seed) for the log")
    ap.add_argument("--minutes", type=float, default=40.0, help="length of this leg; resume with the same command")
    ap.add_argument("--real", type=int, default=0,
                    help="real-face targets (UTKFace train photos inverted like the app's; 0: encoder-like codes only)")
    ap.add_argument("--real-val", type=int, default=0, help="held-out real-face targets for the log")
    ap.add_argument("--per-target", type=int, default=3, help="driven copies (random head pose and expression) per target")
    ap.add_argument("--real-share", type=float, default=0.5, help="share of each batch drawn from the real targets")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--w-msssim", type=float, default=0.5)
    ap.add_argument("--w-id", type=float, default=0.0,
                    help="face recogniser identity loss, 1 - cos (training/models/face_id.py; 0: off)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    ap.add_argument("--report", type=Path, default=Path("docs/results/live_generator_train.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    from training.train.preview_heads import load_preview_heads

    teacher = load_preview_heads(load_weights()).eval().requires_grad_(False)
    data = build_cache(teacher, args.samples, drawn(teacher, 0), RUN_DIR / "train.pt", args.threads, dev)
    val = build_cache(teacher, args.val, drawn(teacher, 1), RUN_DIR / "val.pt", args.threads, dev)
    k = group_size(args.per_target, True)
    real = build_cache(teacher, args.real * k, real_targets("train", args.real, args.per_target, args.threads),
                       RUN_DIR / "real_train.pt", args.threads, dev) if args.real else None
    real_val = build_cache(teacher, args.real_val * k, real_targets("heldout", args.real_val, args.per_target,
                                                                      args.threads),
                           RUN_DIR / "real_val.pt", args.threads, dev) if args.real_val else None
    teacher.cpu()
    from training.models.face_id import identity_loss
    from training.train.encoder import identity_term

    recogniser, rows, cols = identity_term(teacher, 4, 256, torch.device("cpu"))  # framed on the 256-px render
    ckpt_path = RUN_DIR / "checkpoint.pt"
    student = prune_from_teacher(teacher.synthesis, data["wplus"][:32])
    if not ckpt_path.is_file() and args.out.is_file():  # a fresh machine: warm-start from the kept slim weights
        student = load_live_synthesis(args.out, teacher)
        print(f"warm start from {args.out}")
    opt = torch.optim.Adam([p for n, p in student.named_parameters() if n.startswith(("layers.3.", "layers.4."))],
                           lr=args.lr)
    step, log = 0, []
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, weights_only=True)
        student.load_state_dict(ckpt["student"])
        opt.load_state_dict(ckpt["opt"])
        for group in opt.param_groups:  # the checkpoint's optimiser state carries the old leg's rate
            group["lr"] = args.lr
        step, log = ckpt["step"], json.loads(ckpt["log"])
        print(f"resumed at step {step}")
    student.to(dev).requires_grad_(False)
    recogniser, rows, cols = recogniser.to(dev), rows.to(dev), cols.to(dev)
    trainable = [p for n, p in student.named_parameters() if n.startswith(("layers.3.", "layers.4."))]
    for p in trainable:
        p.requires_grad_(True)

    def scores(d: dict, pick: torch.Tensor) -> tuple[float, float]:
        """(PSNR, recogniser 1 - cos) of the student on the codes `pick` of a cached set."""
        with torch.no_grad():
            chunks = [(d["x2"][i].float().to(dev), d["wplus"][i].to(dev), d["target"][i].float())
                      for i in pick.split(8)]
            pred = [tail(student, x2, w).cpu() for x2, w, _ in chunks]
            ident = [float(identity_loss(recogniser, p.to(dev), t.to(dev), rows, cols)) for p, (_, _, t) in
                     zip(pred, chunks)]
        return psnr(torch.cat(pred), torch.cat([t for *_, t in chunks])), float(np.mean(ident))

    def evaluate() -> dict:
        """val: held-out encoder-like codes; with --real-val, held-out photos' codes by kind (group_size's order)."""
        student.eval()
        sets = {"val": (val, torch.arange(len(val["wplus"])))}
        if real_val is not None:
            kind = torch.arange(len(real_val["wplus"])) % k
            sets |= {"val_target": (real_val, (kind == 0).nonzero()[:, 0]),
                     "val_driven": (real_val, ((kind > 0) & (kind <= args.per_target)).nonzero()[:, 0]),
                     "val_user": (real_val, (kind == k - 2).nonzero()[:, 0]),
                     "val_blend": (real_val, (kind == k - 1).nonzero()[:, 0])}
        out = {}
        for name, (d, pick) in sets.items():
            p, i = scores(d, pick)
            out |= {f"{name}_psnr": round(p, 2), f"{name}_id": round(i, 4)}
        student.train()
        return out

    log.append({"step": step, **evaluate(), "leg_start": True})  # a leg's before, measured like its after
    print(json.dumps(log[-1]), flush=True)
    g = torch.Generator().manual_seed(step)
    t0, last_save = time.time(), time.time()
    n_real = round(args.batch * args.real_share) if real is not None else 0  # of each batch
    while time.time() - t0 < 60 * args.minutes:
        idx = torch.randint(0, len(data["wplus"]), (args.batch - n_real,), generator=g)
        ridx = torch.randint(0, len(real["wplus"]), (n_real,), generator=g) if n_real else None
        pick = lambda key: torch.cat([data[key][idx]] + ([real[key][ridx]] if n_real else []))  # noqa: E731
        w, target = pick("wplus").to(dev), pick("target").float().to(dev)
        pred = tail(student, pick("x2").float().to(dev), w)
        x, y = (pred.clamp(-1, 1) + 1) / 2, (target + 1) / 2
        loss = F.l1_loss(pred, target) + F.mse_loss(pred, target) + args.w_msssim * (1 - ms_ssim(x, y).mean())
        if args.w_id > 0:
            loss = loss + args.w_id * identity_loss(recogniser, pred, target, rows, cols)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0 or time.time() - last_save > 300:
            log.append({"step": step, "loss": round(loss.item(), 4), **evaluate(),
                        "leg_minutes": round((time.time() - t0) / 60, 1)})
            print(json.dumps(log[-1]), flush=True)
            torch.save({"student": student.state_dict(), "opt": opt.state_dict(), "step": step,
                        "log": json.dumps(log)}, ckpt_path.with_suffix(".tmp"))
            ckpt_path.with_suffix(".tmp").replace(ckpt_path)
            last_save = time.time()
    log.append({"step": step, **evaluate()})
    torch.save({"student": student.state_dict(), "opt": opt.state_dict(), "step": step, "log": json.dumps(log)},
               ckpt_path.with_suffix(".tmp"))
    ckpt_path.with_suffix(".tmp").replace(ckpt_path)
    save_slim(student.cpu(), args.out)
    if args.out == WEIGHTS_PATH:  # the kept weights changed: their manifest entry follows, provenance kept
        from training.export.manifest import entry, update_manifest

        fresh = entry(WEIGHTS_PATH, "slim fp16 weights of the live generator's trained blocks (3-4): the warm start "
                                    "of the next training leg (not loaded by the engine)")
        kept = json.loads(MANIFEST_PATH.read_text())["models"].get("live_generator_fp16", fresh)
        update_manifest({"live_generator_fp16": {**kept, "sha256": fresh["sha256"], "bytes": fresh["bytes"]}})
    write_json_atomic(args.report, {"config": {k: str(v) for k, v in vars(args).items()},
                                    "channels": LIVE_CHANNELS, "log": log})
    print(f"wrote {args.out} at step {step}: {json.dumps(log[-1])}")


if __name__ == "__main__":
    main()
