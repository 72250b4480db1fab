"""Evaluate the inversion encoder against two baselines (the average face w_avg, latent optimisation with the torch
generator) on real photos and on held-out generated faces.

    python -m training.evaluate.encoder --json runs/eval.json --pairs docs/images/inversion_pairs.jpg
    # CPU-sized latent optimisation (the full baseline is --opt-steps 300 on every image, on a GPU):
    python -m training.evaluate.encoder --opt-steps 10 --opt-images 3

Per image (input = the FFHQ-style MediaPipe-aligned 256-px crop; reconstruction = the render re-aligned the same
way, as `celeblook invert` writes it):
  * identity: distance of dlib's face-recognition descriptors (dlib_face_recognition_resnet_model_v1, 5-point
    shape predictor; dlib's HOG detector on the 256-px crops, a fixed central box when it finds nothing) between
    input and reconstruction; the usual "same person" threshold is 0.6;
  * PSNR and SSIM (gaussian window, sigma 1.5) at 256 px inside the input's face oval (MediaPipe landmarks);
  * skin tone: median CIELAB inside that oval, reconstruction minus input: delta L* (> 0: lighter) and delta E76;
  * methods: "encoder", the network's one pass alone; "encoder+skin", that followed by the predicted skin-tone
    match of engine/inversion/skin_tone.py; "encoder+skin loop", that plus one closed-loop pass on the rendered skin
    (engine.inversion.encoder.render_closed_loop); "encoder+landmarks", the network plus the landmark correction
    (engine/inversion/corrections/landmark.py), and "+skin loop" on top; "encoder+landmarks+identity", that plus the identity
    correction (engine/inversion/corrections/identity.py: the engine's one pass, what the live loop starts from), and
    "+skin loop" on top; "+identity loop", the one pass plus `--identity-passes` closed-loop passes of the identity
    feedback (engine/inversion/corrections/feedback.py, one render each), and "+identity+skin loop", both loops in the same
    passes (what `celeblook invert`, the photo edits and the morph targets write); "quality", the
    engine's quality mode from that one pass (engine/inversion/refine.py, onnxruntime), and "+skin loop" on top (`celeblook invert
    --quality`); the average face; latent optimisation from it (torch); the encoder refined in torch
    (training/fit/refine_inversion.py), and refined then one closed-loop skin pass. The closed loop sets the
    reconstruction's median skin colour to the input's by construction, so for those rows the skin columns say
    that it converged, not how good the face is;
  * generated faces only: latent error, MSE of (W+ - w_avg) in units of w_std over the 16 slots the generator
    uses, and 1 - cosine of those residuals.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from engine.align import align_face, crop_points, usable_faces
from engine.atomic import write_json_atomic
from engine.benchmark import provenance
from engine.inversion.encoder import ClosedLoop, Encoder, realign_render, render_closed_loop
from engine.inversion.corrections.identity import IdentityCorrection
from engine.generator import Generator, to_uint8_rgb
from engine.image_io import load_image, save_image
from engine.landmarks import FaceLandmarker
from engine.inversion.refine import ID_WEIGHT, Refiner, refine_latent
from engine.latents import to_wplus
from engine.inversion.skin_tone import SkinToneModel, face_oval_mask, skin_lab
from training.data.face_sets import PHOTOS, SIZE, VIDEOS, video_frames
from training.data.samples import USED_SLOTS, w_stats
from training.evaluate.dlib_judge import DlibIdentity
from training.evaluate.image_metrics import region_metrics, skin_shift
from training.fit.refine_inversion import REFINE_ANCHOR_EVERY, REFINE_LR, load_refiner, optimise_latent

HELD_OUT_SEED = 900_000
ONE_PASS = "encoder+landmarks+identity"  # Encoder.invert_face with both corrections
ID_LOOP = ONE_PASS + "+identity loop"  # and the closed loop of the identity feedback (no skin)
ID_SKIN_LOOP = ONE_PASS + "+identity+skin loop"  # both closed loops: what `celeblook invert` writes


def latent_error(pred: np.ndarray, true: np.ndarray, w_avg: np.ndarray, w_std: np.ndarray) -> tuple[float, float]:
    rp, rt = (to_wplus(pred)[0] - w_avg)[list(USED_SLOTS)], (to_wplus(true)[0] - w_avg)[list(USED_SLOTS)]
    mse = float(np.mean(((rp - rt) / w_std) ** 2))
    cos = np.sum(rp * rt, 1) / (np.linalg.norm(rp, axis=1) * np.linalg.norm(rt, axis=1) + 1e-8)
    return mse, float(1 - cos.mean())


# ------------------------------------------------------------------------------------------------- driver
def collect_inputs(landmarker, gen: Generator, photos: Path, n_generated: int, videos: Path | None = None,
                   per_clip: int = 0) -> list[dict]:
    """Aligned crops of every photo with a usable face (largest face), of held-out generated faces and of
    `per_clip` frames of every video clip."""
    items = []
    for path in sorted(p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        image = load_image(path)
        faces = usable_faces(landmarker.detect(image))
        if not faces:
            print(f"skip {path.name}: no usable face")
            continue
        crop = align_face(image, faces[0], SIZE)
        items.append({"set": "photos", "name": path.name, "crop": crop.image, "mask": face_oval_mask(faces[0], crop),
                      "points": crop_points(faces[0], crop)})
    for i in range(n_generated):
        w = gen.sample_w(HELD_OUT_SEED + i, 0.7)
        render = cv2.cvtColor(gen.render(w), cv2.COLOR_RGB2BGR)
        faces = landmarker.detect(render)
        if not faces:
            continue
        crop = align_face(render, faces[0], SIZE)
        items.append({"set": "generated", "name": f"seed {HELD_OUT_SEED + i}", "crop": crop.image,
                      "mask": face_oval_mask(faces[0], crop), "points": crop_points(faces[0], crop), "w": w})
    for name, frame in video_frames(videos, per_clip) if videos is not None else []:
        faces = usable_faces(landmarker.detect(frame))
        if faces:
            crop = align_face(frame, faces[0], SIZE)
            items.append({"set": "video", "name": name, "crop": crop.image, "mask": face_oval_mask(faces[0], crop),
                          "points": crop_points(faces[0], crop)})
    return items


def render_aligned(gen: Generator, lm, wplus: np.ndarray) -> tuple[np.ndarray, bool]:
    """W+ rendered at 1024 px and re-aligned into the input crop's framing (as `celeblook invert` writes it);
    the flag says whether the render's own landmarks were found."""
    render = cv2.cvtColor(to_uint8_rgb(gen.synthesize(wplus))[0], cv2.COLOR_RGB2BGR)
    return realign_render(render, lm, SIZE)


def exposure_sweep(encoder_path: str | None, photos: Path, videos: Path, per_clip: int, factors: list[float],
                   threads: int) -> list[dict]:
    """Does the reconstruction follow exposure? Every real face's aligned crop scaled by each factor; skin CIELAB
    (median in the face oval) of the scaled input, of its one-pass reconstruction and of that reconstruction after
    the skin-tone match (engine/inversion/skin_tone.py)."""
    gen, enc, skin_tone = Generator.load(threads), Encoder.load(threads, encoder_path), SkinToneModel.load()
    out = []
    with FaceLandmarker() as lm:
        for it in (i for i in collect_inputs(lm, gen, photos, 0, videos, per_clip) if i["set"] != "generated"):
            for k in factors:
                x = np.clip(it["crop"].astype(np.float32) * k, 0, 255).astype(np.uint8)
                lab_in, w = skin_lab(x, it["mask"]), enc.invert(x)
                lab_out = skin_lab(render_aligned(gen, lm, w)[0], it["mask"])
                lab_skin = skin_lab(render_aligned(gen, lm, skin_tone.match(w, lab_in))[0], it["mask"])
                out.append({"set": it["set"], "name": it["name"], "factor": k, "lab_in": lab_in.round(1).tolist(),
                            "lab_out": lab_out.round(1).tolist(), "lab_out_skin_match": lab_skin.round(1).tolist()})
                print(f"{it['name']:22s} x{k:<5} skin L*a*b* in {lab_in.round(1)} out {lab_out.round(1)} "
                      f"skin-matched {lab_skin.round(1)}", flush=True)
    return out


def follow_slopes(sweep: list[dict], factor: float = 1.0) -> dict:
    """Least-squares slope of reconstruction against input skin L*, a*, b* over the faces at one exposure factor
    (1: the face follows the input; 0: every face gets the same value)."""
    rows = [r for r in sweep if r["factor"] == factor]
    lab_in = np.array([r["lab_in"] for r in rows])
    out = {}
    for key in ("lab_out", "lab_out_skin_match"):
        lab = np.array([r[key] for r in rows])
        out[key] = [round(float(np.polyfit(lab_in[:, c], lab[:, c], 1)[0]), 2) for c in range(3)]
    return out


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    for s in ("photos", "video", "generated"):
        for method in dict.fromkeys(r["method"] for r in rows):
            rs = [r for r in rows if r["set"] == s and r["method"] == method]
            if not rs:
                continue
            d = np.array([r["id_dist"] for r in rs])
            row = {"set": s, "method": method, "n": len(rs), "id_dist": round(float(d.mean()), 3),
                   "id_share_lt_0.6": round(float(np.mean(d < 0.6)), 2),
                   "psnr_db": round(float(np.mean([r["psnr"] for r in rs])), 2),
                   "ssim": round(float(np.mean([r["ssim"] for r in rs])), 3),
                   "skin_dL": round(float(np.mean([r["skin_dL"] for r in rs])), 1),
                   "skin_dE": round(float(np.mean([r["skin_dE"] for r in rs])), 1),
                   "ms_per_image": round(float(np.mean([r["ms"] for r in rs])), 1)}
            if s == "generated":
                row["latent_mse"] = round(float(np.mean([r["latent_mse"] for r in rs])), 3)
                row["latent_1-cos"] = round(float(np.mean([r["latent_cos"] for r in rs])), 3)
            out.append(row)
    return out


def markdown(summary: list[dict]) -> str:
    cols = ["set", "method", "n", "id_dist", "id_share_lt_0.6", "psnr_db", "ssim", "skin_dL", "skin_dE", "latent_mse",
            "latent_1-cos", "ms_per_image"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "–")) for c in cols) + " |" for r in summary]
    return "\n".join(lines)


PAIR_LABELS = {"encoder": "network alone", "encoder+skin loop": "network+skin loop",
               "encoder+landmarks+skin loop": "+landmarks+skin", ONE_PASS + "+skin loop": "one pass+skin",
               ID_SKIN_LOOP: "+identity loop (invert)",
               "quality+skin loop": "quality (engine)",
               "encoder+refine": "refine (torch)", "encoder+refine+skin loop": "refine+skin (torch)"}


def pairs_header(methods: list[str], tile: int = 160) -> np.ndarray:
    """The white header row naming the columns of pairs_image (short labels, PAIR_LABELS)."""
    header = np.full((22, tile * (1 + len(methods)), 3), 255, np.uint8)
    for j, name in enumerate(["input (aligned)"] + [PAIR_LABELS.get(m, m) for m in methods]):
        cv2.putText(header, name, (j * tile + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return header


def pairs_image(items: list[dict], recons: dict, methods: list[str], tile: int = 160) -> np.ndarray:
    """Rows of input | reconstruction per method, for the photos; a header row names the columns."""
    photo_items = [it for it in items if it["set"] == "photos"]
    rows = [pairs_header(methods, tile)]
    for it in photo_items:
        tiles = [it["crop"]] + [recons[(it["name"], m)] for m in methods]
        rows.append(np.concatenate([cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA) for t in tiles], 1))
    return np.concatenate(rows, 0)


def evaluate(encoder_path: str | None, photos: Path, n_generated: int, opt_steps: int, opt_images: int,
             threads: int, refine_steps: int = 0, opt_block: int | None = None, videos: Path | None = None,
             per_clip: int = 0, refine_anchor: int = REFINE_ANCHOR_EVERY,
             quality_steps: int = 0, identity_passes: int = 1,
             quality_id_weight: float = ID_WEIGHT, shipped_fits: bool = False,
             identity_correction: Path | None = None,
             ) -> tuple[list[dict], list[dict], np.ndarray | None]:
    gen = Generator.load(threads)
    enc = Encoder.load(threads, encoder_path)
    if identity_correction is not None:  # a development identity correction in the one pass (Encoder.with_identity)
        enc = enc.with_identity(IdentityCorrection.load(identity_correction))
    if shipped_fits and encoder_path:  # a development network with the shipped network's corrections on top
        shipped = Encoder.load(threads)
        enc.correction, enc.identity, enc.face_id = shipped.correction, shipped.identity, shipped.face_id
    skin_tone = SkinToneModel.load()
    refiner = Refiner.load(threads, full=gen) if quality_steps > 0 else None
    _, w_std = w_stats(gen.map)
    ident = DlibIdentity()
    torch_model = None
    rows, recons = [], {}
    with FaceLandmarker() as lm:
        items = collect_inputs(lm, gen, photos, n_generated, videos, per_clip)
        for it in items:
            latents = {}
            t0 = time.perf_counter()
            latents["encoder"] = enc.invert(it["crop"])
            t_enc = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            lab_in = skin_lab(it["crop"], it["mask"])
            latents["encoder+skin"] = skin_tone.match(latents["encoder"], lab_in)
            t_skin = t_enc + (time.perf_counter() - t0) * 1000

            def closed_loop(w, skin=True, embedding=None):
                loop = ClosedLoop(skin_tone if skin else None, lab_in, it["mask"], 1, enc, embedding, identity_passes)
                return render_closed_loop(gen, lm, w, SIZE, loop)[0]

            t0 = time.perf_counter()
            latents["encoder+skin loop"] = closed_loop(latents["encoder+skin"])
            t_loop = t_skin + (time.perf_counter() - t0) * 1000  # includes the first render (invert makes it anyway)
            latents["w_avg"] = to_wplus(gen.w_avg)
            times = {"encoder": t_enc, "encoder+skin": t_skin, "encoder+skin loop": t_loop, "w_avg": 0.0}
            n_in_set = sum(1 for x in items if x["set"] == it["set"] and items.index(x) < items.index(it))
            if enc.correction is not None:  # the engine's one pass
                t0 = time.perf_counter()
                latents["encoder+landmarks"] = enc.correction.apply(latents["encoder"], it["points"])
                times["encoder+landmarks"] = t_enc + (time.perf_counter() - t0) * 1000
                t0 = time.perf_counter()
                latents["encoder+landmarks+skin loop"] = closed_loop(skin_tone.match(latents["encoder+landmarks"],
                                                                                     lab_in))
                times["encoder+landmarks+skin loop"] = times["encoder+landmarks"] + (time.perf_counter() - t0) * 1000
            if enc.identity is not None:  # the engine's one pass (Encoder.invert_face)
                t0 = time.perf_counter()
                embedding = enc.face_id.embed(it["crop"], it["points"][:, :2] * it["crop"].shape[0])
                latents[ONE_PASS] = enc.identity.apply(latents["encoder+landmarks"], embedding)
                times[ONE_PASS] = times["encoder+landmarks"] + (time.perf_counter() - t0) * 1000
                t0 = time.perf_counter()
                latents[ONE_PASS + "+skin loop"] = closed_loop(skin_tone.match(latents[ONE_PASS], lab_in))
                times[ONE_PASS + "+skin loop"] = times[ONE_PASS] + (time.perf_counter() - t0) * 1000
            if enc.feedback is not None and identity_passes > 0:  # the one pass's closed loops (celeblook invert)
                for method, skin in ((ID_LOOP, False), (ID_SKIN_LOOP, True)):
                    t0 = time.perf_counter()
                    start = skin_tone.match(latents[ONE_PASS], lab_in) if skin else latents[ONE_PASS]
                    latents[method] = closed_loop(start, skin, embedding)
                    times[method] = times[ONE_PASS] + (time.perf_counter() - t0) * 1000
            if quality_steps > 0:  # the engine's quality mode (onnxruntime, no torch), on every image
                start = next(m for m in (ONE_PASS, "encoder+landmarks", "encoder") if m in latents)
                t0 = time.perf_counter()
                latents["quality"] = refine_latent(refiner, it["crop"], latents[start], quality_steps,
                                                   points=it["points"], id_weight=quality_id_weight)[0]
                times["quality"] = times[start] + (time.perf_counter() - t0) * 1000
                t0 = time.perf_counter()
                latents["quality+skin loop"] = closed_loop(skin_tone.match(latents["quality"], lab_in))
                times["quality+skin loop"] = times["quality"] + (time.perf_counter() - t0) * 1000
            if (opt_steps > 0 or refine_steps > 0) and n_in_set < opt_images:
                if torch_model is None:
                    from training.models.face_id import FaceIdNet

                    torch_model, face_id_net = load_refiner(threads), FaceIdNet()
                # the baseline is the classic pixel-only optimisation; the refinement has the identity term
                runs = {"latent_opt": (opt_steps if it["set"] != "video" else 0, None, 0.03, 0, None),
                        "encoder+refine": (refine_steps, latents["encoder"], REFINE_LR, refine_anchor, face_id_net)}
                for method, (steps, init, lr, anchor, face_id) in runs.items():
                    if steps > 0:
                        t0 = time.perf_counter()
                        latents[method] = optimise_latent(torch_model, it["crop"], steps, lr, threads, init, opt_block,
                                                          anchor, face_id, it["points"])
                        times[method] = (time.perf_counter() - t0) * 1000 + (t_enc if init is not None else 0.0)
                if "encoder+refine" in latents:
                    t0 = time.perf_counter()
                    latents["encoder+refine+skin loop"] = closed_loop(latents["encoder+refine"])
                    times["encoder+refine+skin loop"] = times["encoder+refine"] + (time.perf_counter() - t0) * 1000
            for method, wplus in latents.items():
                recon, realigned = render_aligned(gen, lm, wplus)
                dist, found = ident.distance(it["crop"], recon)
                psnr, ssim = region_metrics(it["crop"], recon, it["mask"])
                skin_dl, skin_de = skin_shift(it["crop"], recon, it["mask"])
                row = {"set": it["set"], "name": it["name"], "method": method, "id_dist": dist, "dlib_found": found,
                       "psnr": psnr, "ssim": ssim, "skin_dL": skin_dl, "skin_dE": skin_de, "ms": times[method],
                       "realigned": realigned}
                if "w" in it:
                    row["latent_mse"], row["latent_cos"] = latent_error(wplus, it["w"], gen.w_avg, w_std)
                rows.append(row)
                recons[(it["name"], method)] = recon
                print(f"{it['set']:9s} {it['name']:22s} {method:10s} id {dist:.3f} psnr {psnr:.2f} ssim {ssim:.3f}",
                      flush=True)
    methods = ["encoder", "encoder+skin loop", "w_avg"] + \
        (["encoder+landmarks+skin loop"] if enc.correction is not None else []) + \
        ([ONE_PASS + "+skin loop"] if enc.identity is not None else []) + \
        ([ID_SKIN_LOOP] if enc.feedback is not None and identity_passes > 0 else []) + \
        (["quality+skin loop"] if quality_steps > 0 else []) + \
        (["latent_opt"] if opt_steps > 0 and opt_images > 0 else []) + \
        (["encoder+refine", "encoder+refine+skin loop"] if refine_steps > 0 and opt_images > 0 else [])
    have = [m for m in methods if all((it["name"], m) in recons for it in items if it["set"] == "photos")]
    pairs = pairs_image(items, recons, have) if any(it["set"] == "photos" for it in items) else None
    return rows, summarise(rows), pairs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", help="inversion_encoder.onnx (default: the shipped one)")
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--generated", type=int, default=16, help="held-out generated faces (seeds 900000+, psi 0.7)")
    ap.add_argument("--videos", type=Path, default=VIDEOS)
    ap.add_argument("--video-frames", type=int, default=3, help="frames per video clip (a third set of real faces)")
    ap.add_argument("--opt-steps", type=int, default=300, help="latent optimisation steps (0: skip this baseline)")
    ap.add_argument("--opt-images", type=int, default=1000, help="latent optimisation on the first N images of each set")
    ap.add_argument("--refine-steps", type=int, default=0,
                    help="also: latent optimisation of the whole W+ starting from the encoder's (quality mode trial)")
    ap.add_argument("--refine-anchor", type=int, default=REFINE_ANCHOR_EVERY,
                    help="the refinement's full-generator colour anchor every N steps (0: off; the quality mode's "
                         f"default, {REFINE_ANCHOR_EVERY})")
    ap.add_argument("--opt-block", type=int, choices=[4, 5],
                    help="optimise through the 256 (4) or 512 (5)-px preview head instead of the 1024-px network")
    ap.add_argument("--quality-steps", type=int, default=0,
                    help="also: the engine's quality mode (engine/inversion/refine.py, onnxruntime) with N steps from the "
                         "engine's one pass, on every image (20: the default of --quality)")
    ap.add_argument("--quality-id-weight", type=float, default=ID_WEIGHT,
                    help=f"the quality mode's identity-term weight (default {ID_WEIGHT}, the engine's; 0: pixels only)")
    ap.add_argument("--identity-passes", type=int, default=1,
                    help="closed-loop passes of the identity feedback in the '+identity loop' rows (0: no such rows)")
    ap.add_argument("--shipped-fits", action="store_true",
                    help="apply the shipped landmark and identity corrections to a development --encoder too")
    ap.add_argument("--identity-correction", type=Path,
                    help="this identity correction in the one pass instead of the shipped one (a development fit)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--pairs", type=Path, help="write input | reconstruction rows for the photos (JPEG)")
    ap.add_argument("--exposure", help="only the exposure sweep: comma-separated brightness factors, e.g. "
                                       "0.6,0.8,1,1.25, on every real face (skin CIELAB in and out)")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.exposure:
        try:
            factors = [float(f) for f in args.exposure.split(",")]
        except ValueError:
            ap.error(f"--exposure takes comma-separated numbers, e.g. 0.6,0.8,1,1.25 (got {args.exposure!r})")
        sweep = exposure_sweep(args.encoder, args.photos, args.videos, args.video_frames, factors, args.threads)
        slopes = follow_slopes(sweep) if 1.0 in factors else {}
        print(f"slope of reconstruction on input skin L*, a*, b* at x1 (one pass; skin-matched): {slopes}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.json, {"encoder": args.encoder or "shipped", "exposure": sweep,
                                          "slopes_x1": slopes}, indent=1)
        return
    rows, summary, pairs = evaluate(args.encoder, args.photos, args.generated, args.opt_steps, args.opt_images,
                                    args.threads, args.refine_steps, args.opt_block, args.videos, args.video_frames,
                                    args.refine_anchor, args.quality_steps, args.identity_passes,
                                    args.quality_id_weight, args.shipped_fits, args.identity_correction)
    print(markdown(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json, {"summary": summary, "rows": rows, "opt_steps": args.opt_steps,
                                      "refine_steps": args.refine_steps,
                                      "refine_anchor": args.refine_anchor, "opt_block": args.opt_block,
                                      "quality_steps": args.quality_steps,
                                      "quality_id_weight": args.quality_id_weight,
                                      "opt_images": args.opt_images, "video_frames": args.video_frames,
                                      "seconds": round(time.time() - t0),
                                      **provenance("training.evaluate.encoder", argv)}, default=float)
    if args.pairs is not None and pairs is not None:
        save_image(args.pairs, pairs, jpeg_quality=80)
        print(f"wrote {args.pairs} ({args.pairs.stat().st_size / 1e3:.0f} KB)")


if __name__ == "__main__":
    main()
