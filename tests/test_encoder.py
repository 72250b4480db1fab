"""Inversion encoder: modules and losses (tiny random configs), a few training steps, ONNX export parity, the shipped
model's parity against its torch checkpoint format, the engine path and `celeblook invert`."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from tests.conftest import require

pytestmark = pytest.mark.slow  # training steps, ONNX exports and the torch generator

torch = require("torch")

from engine.cli import main as cli_main  # noqa: E402
from training.models.encoder import (EncoderConfig, InversionEncoder, USED_SLOTS, count_parameters,  # noqa: E402
                                     image_losses, latent_losses, ms_ssim)

TINY = EncoderConfig(backbone="mobilenetv3_small_050", input_size=64, mapper_hidden=64, mapper_layers=1, slot_rank=4)


def test_shapes_and_unit_embedding():
    model = InversionEncoder(TINY, torch.randn(512), torch.rand(512) + 0.5).eval()
    wplus, e = model(torch.rand(3, 3, 64, 64))
    assert wplus.shape == (3, 23, 512) and e.shape == (3, 512)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    # unused slots carry no per-slot correction: they equal the shared W
    unused = [s for s in range(23) if s not in USED_SLOTS]
    assert len(USED_SLOTS) == 16 and unused == [3, 6, 9, 12, 15, 18, 22]
    assert torch.allclose(wplus[:, unused], wplus[:, unused[:1]].expand(-1, len(unused), -1))


def test_thumbnail_path_ridge_recovers_a_low_rank_linear_map():
    """fit_ridge: residuals that are a rank-3 linear function of the thumbnail are fitted almost exactly, and the
    module then predicts them from images (unused slots stay untouched)."""
    from dataclasses import replace

    from training.models.encoder import ThumbnailRegressor

    cfg = replace(TINY, thumb_size=4, thumb_rank=3)
    w_std = torch.rand(512) + 0.5
    path = ThumbnailRegressor(cfg, w_std)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(400, 3, 16, 16, generator=g)
    thumbs = path.thumbnail(images)
    mix = torch.randn(48, 3, generator=g) @ torch.randn(3, 16 * 512, generator=g)
    target = ((thumbs - thumbs.mean(0)) @ mix).view(-1, 16, 512) + 0.3
    assert path.fit_ridge(thumbs, target, lam=1e-3) < 1e-4 * target.var().item()
    out = path(images[:5])
    assert torch.allclose(out[:, list(USED_SLOTS)], target[:5] * w_std, atol=1e-2 * float(target.abs().max()))
    assert out[:, [3, 6, 22]].abs().max() == 0


def test_thumbnail_path_truncates_a_higher_rank_map_to_its_best_approximation():
    """set_truncated: a rank-8 path's map cut to rank 3 equals the rank-3 truncated SVD of the full product
    (Eckart-Young); at equal or higher rank the map is unchanged."""
    from dataclasses import replace

    from training.models.encoder import ThumbnailRegressor

    g = torch.Generator().manual_seed(1)
    down, up = torch.randn(8, 48, generator=g), torch.randn(16 * 512, 8, generator=g)
    full = (up @ down).double()
    u, s, vh = torch.linalg.svd(full, full_matrices=False)
    for rank, expected in ((3, u[:, :3] * s[:3] @ vh[:3]), (8, full), (10, full)):
        path = ThumbnailRegressor(replace(TINY, thumb_size=4, thumb_rank=rank))
        path.set_truncated(down, up)
        got = (path.up.weight @ path.down.weight).double()
        assert torch.allclose(got, expected, atol=1e-4 * float(full.abs().max()))


def test_losses():
    w_avg, w_std = torch.zeros(512), torch.ones(512)
    t = torch.randn(2, 23, 512)
    parts = latent_losses(t, t, w_avg, w_std)
    assert parts["mse"].item() == 0 and abs(parts["cos"].item()) < 1e-5
    x = torch.rand(2, 3, 256, 256)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2), atol=1e-5)
    assert ms_ssim(x, torch.rand(2, 3, 256, 256)).max() < 0.3
    assert image_losses(x * 2 - 1, x * 2 - 1)["l1"].item() == 0


def _tiny_cache(folder, n=8, seed=0):
    rng = np.random.default_rng(seed)
    w_avg = rng.standard_normal(512).astype(np.float32)
    w_std = (rng.random(512) + 0.5).astype(np.float32)
    wplus = (w_avg + w_std * rng.standard_normal((n, 1, 512))).repeat(23, 1).astype(np.float32)
    crop = rng.integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "shard_00000.npz", crop=crop, target=crop, wplus=wplus, psi=np.ones(n, np.float32),
             aligned=np.ones(n, bool))
    np.savez(folder / "stats.npz", w_avg=w_avg, w_std=w_std)
    return folder


def test_training_steps_decrease_loss_and_resume(tmp_path):
    from training.train.encoder import make_config, train

    data = _tiny_cache(tmp_path / "cache")
    cfg = make_config("tiny", data=str(data), steps=12, batch=4, aug_strength=0.0, threads=2, val=2)
    run = tmp_path / "run"
    train(cfg, run, limit=6)  # 4 to train on, the last 2 held out
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 12 and "samples_per_s" in log[-1]
    assert log[-1]["mse"] < log[0]["mse"]
    assert all(np.isfinite(entry["val_mse"]) and entry["val_mse"] > 0 for entry in log)
    # resume: a longer run continues from step 12
    cfg.steps = 14
    train(cfg, run, limit=6)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 14


def test_training_initialises_the_thumbnail_path_by_ridge(tmp_path, capsys):
    from training.train.encoder import make_config, train

    data = _tiny_cache(tmp_path / "cache", n=12)
    cfg = make_config("tiny", data=str(data), steps=2, batch=4, aug_strength=0.0, threads=2, val=2,
                      encoder={"thumb_size": 4, "thumb_rank": 8})
    train(cfg, tmp_path / "run")
    assert "thumbnail path: ridge on 10 samples" in capsys.readouterr().out
    from training.train.encoder import load_encoder

    model = load_encoder(tmp_path / "run" / "last.pt")
    assert model.thumb is not None and model.thumb.up.weight.abs().sum() > 0
    # warm start at a lower rank: the path starts from the truncated map instead of a new ridge fit
    cfg = make_config("tiny", data=str(data), steps=1, batch=4, aug_strength=0.0, threads=2, val=2,
                      init=str(tmp_path / "run" / "last.pt"), encoder={"thumb_size": 4, "thumb_rank": 3})
    train(cfg, tmp_path / "run3")
    assert "thumbnail path: ridge" not in capsys.readouterr().out
    assert load_encoder(tmp_path / "run3" / "last.pt").thumb.down.weight.shape == (3, 48)


@pytest.mark.parametrize("thumb_size", [0, 8])
def test_onnx_export_parity(tmp_path, thumb_size):
    from dataclasses import replace

    from training.export.encoder import export_encoder, parity

    model = InversionEncoder(replace(TINY, thumb_size=thumb_size, thumb_rank=16), torch.randn(512),
                             torch.rand(512) + 0.5).eval()
    if model.thumb is not None:  # non-zero weights, so the path shows in the parity check
        torch.nn.init.normal_(model.thumb.up.weight, std=0.1)
    path = export_encoder(model, tmp_path / "enc.onnx")
    report = parity(model, path, batch=2)
    assert report["wplus_max_abs"] < 1e-4 and report["embedding_max_abs"] < 1e-5


def test_shipped_encoder_budget_and_torch_parity():
    """The shipped ONNX: within the parameter budget, and equal to the torch model it was exported from (torch's
    outputs for a fixed input are stored beside it by training/export/encoder.py)."""
    import onnx

    from engine.inversion.encoder import Encoder
    from engine.models import MODELS_DIR, resolve_model
    from training.export.encoder import PARITY_FILE, parity_input

    proto = onnx.load(str(resolve_model("inversion_encoder")))
    assert sum(int(np.prod(t.dims)) for t in proto.graph.initializer) <= 15e6
    cfg = EncoderConfig(**json.loads({p.key: p.value for p in proto.metadata_props}["encoder_config"]))
    assert count_parameters(InversionEncoder(cfg)) <= 15e6
    enc = Encoder.load(threads=2)
    assert enc.input_size == cfg.input_size
    w, e = enc.session.run(None, {"image": parity_input(enc.input_size)})
    ref = np.load(MODELS_DIR / PARITY_FILE)
    got = np.concatenate([w.reshape(1, -1), e], axis=1)
    assert np.abs(got - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())


def test_cli_invert_obama(tmp_path, face_photo):
    out, latent, side, pasted = (tmp_path / n for n in ("r.png", "w.npy", "s.png", "p.jpg"))
    assert cli_main(["invert", str(face_photo("obama.jpg")), "--out", str(out), "--latent", str(latent),
                     "--threads", "2"]) == 0
    from engine.image_io import load_image
    assert load_image(out).shape == (256, 256, 3)
    assert np.load(latent).shape == (1, 23, 512)
    assert cli_main(["invert", str(face_photo("obama.jpg")), "--out", str(side), "--side-by-side"]) == 0
    assert load_image(side).shape == (256, 512, 3)
    photo = load_image(face_photo("obama.jpg"))
    assert cli_main(["invert", str(face_photo("obama.jpg")), "--out", str(pasted), "--paste"]) == 0
    assert load_image(pasted).shape == photo.shape


def test_cli_invert_no_face(tmp_path, capsys):
    from engine.image_io import save_image

    blank = tmp_path / "wall.png"
    save_image(blank, np.full((300, 400, 3), 128, np.uint8))
    assert cli_main(["invert", str(blank), "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err
    assert "no face found" in err and "Traceback" not in err
    assert not (tmp_path / "r.png").exists()


def test_refinement_through_the_preview_head_with_the_colour_anchor_matches_the_full_render():
    """The quality mode's refinement: from a perturbed W+ of a known face, a few Adam steps through the 256-px
    preview head bring the *full* generator's render closer to the target; the full-generator anchor keeps its
    colours there (low-pass error at least 25 % under the plain preview-head run's, which drifts: the lighter
    faces the anchor fixes)."""
    import torch.nn.functional as F

    from training.convert.generator import load_weights
    from training.fit.refine_inversion import optimise_latent
    from training.train.preview_heads import load_preview_heads

    model = load_preview_heads(load_weights()).requires_grad_(False)
    with torch.no_grad():
        w_true = model.truncate(model.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(5))), 0.7)
        wplus_true = w_true[:, None].expand(-1, 23, -1)
        target = F.interpolate(model.synthesis(wplus_true), size=(256, 256), mode="area")
    bgr = cv2.cvtColor(((target[0].permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8),
                       cv2.COLOR_RGB2BGR)
    start = (wplus_true + 0.3 * torch.randn(1, 23, 512, generator=torch.Generator().manual_seed(6))).numpy()

    def colour_error(wplus):  # mean |full render - target| in 16-px cells, [-1, 1] units
        with torch.no_grad():
            full = F.interpolate(model.synthesis(torch.from_numpy(wplus)), size=(256, 256), mode="area")
        return float(F.avg_pool2d(full - target, 16).abs().mean())

    plain = optimise_latent(model, bgr, steps=8, lr=0.03, threads=2, init=start, out_block=4)
    anchored = optimise_latent(model, bgr, steps=8, lr=0.03, threads=2, init=start, out_block=4, anchor_every=4)
    assert anchored.shape == (1, 23, 512)
    assert colour_error(plain) < colour_error(start)
    assert colour_error(anchored) < 0.75 * colour_error(plain)


def test_refine_inversion_command(tmp_path, face_photo, capsys):
    """The quality mode for stills writes aligned input | one pass | refined and the refined latent; a file that
    is not an image is one line and exit code 2."""
    from engine.image_io import load_image
    from engine.latents import load_latent
    from training.fit.refine_inversion import main

    out, latent = tmp_path / "refined.png", tmp_path / "me.npy"
    assert main([str(face_photo("obama.jpg")), "--out", str(out), "--latent", str(latent), "--steps", "2", "--side-by-side"]) == 0
    assert load_image(out).shape == (256, 3 * 256, 3)
    assert load_latent(latent).shape == (1, 23, 512)
    bad = tmp_path / "not_a_photo.jpg"
    bad.write_bytes(b"not an image")
    assert main([str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "not an image" in capsys.readouterr().err


def test_evaluation_video_frames_are_evenly_spaced_real_frames(videos_dir):
    """The evaluation's third set: N frames of every clip, named clip#j."""
    from training.data.face_sets import video_frames

    frames = video_frames(videos_dir, 2)
    clips = sorted(p.stem for p in videos_dir.glob("*.mp4"))
    assert [name for name, _ in frames] == [f"{c}#{j}" for c in clips for j in range(2)]
    assert all(f.ndim == 3 and f.shape[2] == 3 and f.std() > 5 for _, f in frames)
    assert not np.array_equal(frames[0][1], frames[1][1])
    assert video_frames(videos_dir, 0) == []


def test_stop_step_ends_early_on_the_full_schedule(tmp_path):
    """--stop-step replays a run cut short by --max-minutes: it stops there, with the learning rate of the longer
    schedule."""
    from training.train.encoder import lr_at, make_config, train

    data = _tiny_cache(tmp_path / "cache")
    cfg = make_config("tiny", data=str(data), steps=10, stop_step=3, batch=4, aug_strength=0.0, threads=2)
    train(cfg, tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 3
    assert log[-1]["lr"] == round(lr_at(2, cfg), 6) and lr_at(2, cfg) > lr_at(9, cfg)
    assert (tmp_path / "run" / "last.pt").is_file()


def test_anneal_minutes_compresses_the_schedule_to_the_time_budget(tmp_path, capsys):
    """--anneal-minutes: the cosine runs on training time when that runs out before the steps do, and the run ends
    annealed (lr at its floor) with a checkpoint."""
    from training.train.encoder import lr_at, make_config, train

    cfg = make_config("tiny", steps=1000, warmup=0, lr=1e-3, anneal_minutes=2.0)
    assert lr_at(10, cfg, 0.0) > 0.99e-3
    assert lr_at(10, cfg, 60.0) == pytest.approx(0.05e-3 + 0.95e-3 * 0.5, rel=0.02)  # half the time: mid-cosine
    assert lr_at(10, cfg, 120.0) == pytest.approx(0.05e-3)
    data = _tiny_cache(tmp_path / "cache")
    cfg = make_config("tiny", data=str(data), steps=1000, batch=4, aug_strength=0.0, threads=2, anneal_minutes=1e-4)
    train(cfg, tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] < 1000 and log[-1]["lr"] == pytest.approx(0.05e-3)
    assert "schedule done" in capsys.readouterr().out and (tmp_path / "run" / "last.pt").is_file()


def test_slim_checkpoint_loads_and_warm_starts(tmp_path):
    from training.train.encoder import load_encoder, make_config, slim_checkpoint, train

    data = _tiny_cache(tmp_path / "cache")
    cfg = make_config("tiny", data=str(data), steps=2, batch=4, aug_strength=0.0, threads=2)
    train(cfg, tmp_path / "run")
    full = tmp_path / "run" / "last.pt"
    slim = slim_checkpoint(full, tmp_path / "slim.pt", half=True)
    assert slim.stat().st_size < 0.5 * full.stat().st_size
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = load_encoder(full)(x)[0], load_encoder(slim)(x)[0]
    assert torch.allclose(a, b, atol=0.05 * float(a.std()))  # float16 weights: close, not equal
    cfg = make_config("tiny", data=str(data), steps=1, batch=4, aug_strength=0.0, threads=2, init=str(slim))
    train(cfg, tmp_path / "warm")
    assert (tmp_path / "warm" / "last.pt").is_file()


def test_identity_loss_reads_the_generators_framing(tmp_path):
    """--w-id: the recogniser's crop is found on the generator's own render of w_avg; the loss is 0 for the same
    face, clearly above 0 for another and reaches W+; a training step with it logs it."""
    from training.convert.generator import load_weights
    from training.models.face_id import identity_loss
    from training.train.encoder import identity_term, make_config, train
    from training.train.preview_heads import load_preview_heads

    torch.set_num_threads(2)
    gen = load_preview_heads(load_weights()).eval().requires_grad_(False)
    cfg = make_config("tiny", image_every=1, image_block=4, w_id=1.0)
    net, rows, cols = identity_term(gen, cfg.image_block, cfg.image_res, torch.device("cpu"))
    assert rows.shape == cols.shape == (224, 256)
    ws = gen.truncate(gen.mapping(torch.randn(2, 512, generator=torch.Generator().manual_seed(1))), 0.8)
    wplus = ws[:, None].expand(2, 23, 512).clone().requires_grad_(True)
    a, b = gen.synthesis(wplus, 4)
    assert identity_loss(net, a[None], a[None].detach(), rows, cols).item() < 1e-5
    other = identity_loss(net, a[None], b[None].detach(), rows, cols)
    assert other.item() > 0.05
    other.backward()
    assert wplus.grad[0].abs().sum() > 0
    data = _tiny_cache(tmp_path / "cache")
    cfg = make_config("tiny", data=str(data), steps=1, batch=2, aug_strength=0.0, threads=2, image_every=1,
                      image_batch=2, image_block=4, w_id=1.0)
    train(cfg, tmp_path / "run", generator=load_weights())
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert 0 < log[-1]["id"] <= 2
    with pytest.raises(SystemExit, match="--w-id needs the image loss"):
        train(make_config("tiny", data=str(data), w_id=1.0, image_every=0), tmp_path / "run0")


def test_online_source_with_align_workers_trains_and_logs_the_wait(tmp_path):
    """The GPU recipe's data path end to end on the CPU: torch renders, MediaPipe crops on 2 worker processes one
    batch ahead, the share of renders with a face and the time the step waited for the workers in the log."""
    from training.train.encoder import make_config, train

    cfg = make_config("tiny", source="online", align_workers=2, align_res=256, batch=2, steps=2, image_every=0,
                      aug_strength=0.0, threads=2)
    train(cfg, tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2 and log[-1]["aligned"] == 1.0 and log[-1]["align_wait_ms"] >= 0


def test_align_pool_crops_like_the_main_process(faces_dir, landmarker):
    """The GPU recipe's worker processes cut exactly the crop a photo gets in the main process, and augment it."""
    from training.data.align_pool import AlignPool
    from training.data.samples import aligned_crop
    from training.data.augment import augment

    img = cv2.cvtColor(cv2.imread(str(faces_dir / "obama.jpg")), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    side = min(h, w)
    square = cv2.resize(img[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2], (384, 384))
    batch = np.stack([square, square[:, ::-1], np.zeros_like(square)])
    expected = [aligned_crop(landmarker, im)[:2] for im in batch]
    with AlignPool(workers=2, batch=4, input_size=64, res=384, strength=0.0, colour=0.0) as pool:
        pool.submit(batch)
        with pytest.raises(RuntimeError, match="collect"):
            pool.submit(batch)
        x, crops, aligned = pool.collect()
        with pytest.raises(ValueError, match="renders of 384 px"):
            pool.submit(np.zeros((2, 256, 256, 3), np.uint8))
    assert aligned.tolist() == [ok for _, ok in expected] == [True, True, False]
    assert np.array_equal(crops, np.stack([c for c, _ in expected]))
    assert np.allclose(x, augment(crops, 64, np.random.default_rng(0), 0.0).numpy(), atol=1e-6)


def test_evaluation_skin_shift_reads_a_darker_skin_as_negative_delta_l(faces_dir):
    """The skin-tone metric: the same face photo darkened by a multiplicative factor reads as darker (delta L* < 0)
    by a matching amount; an identical copy reads zero."""
    from training.evaluate.image_metrics import skin_shift

    image = cv2.imread(str(faces_dir / "obama.jpg"))
    h, w = image.shape[:2]
    mask = np.zeros((h, w), bool)
    mask[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = True
    assert skin_shift(image, image, mask) == (0.0, 0.0)
    darker = (image * 0.7).astype(np.uint8)
    d_l, d_e = skin_shift(image, darker, mask)
    assert -20 < d_l < -5 and d_e >= abs(d_l)


def test_augmentation_colour_strength_is_separate_from_degradations(faces_dir):
    """colour=0 keeps exposure and colour (only jitter, blur, JPEG, noise: the mean colour barely moves), while
    colour alone changes it; the default follows `strength`."""
    from training.data.augment import augment

    crop = cv2.resize(cv2.imread(str(faces_dir / "obama.jpg"))[:, :, ::-1], (256, 256))
    crops = np.repeat(crop[None], 24, axis=0)
    plain = augment(crops[:1], 64, np.random.default_rng(0), 0.0)[0].mean((1, 2))
    shift = {(s, c): (augment(crops, 64, np.random.default_rng(1), s, c).mean((2, 3)) - plain).abs().max().item()
             for s, c in ((1.0, 0.0), (0.0, 1.0))}
    assert shift[(1.0, 0.0)] < 0.03 < shift[(0.0, 1.0)]
    a, b = (augment(crops[:4], 64, np.random.default_rng(2), 0.5, c) for c in (None, 0.5))
    assert torch.equal(a, b)


def test_exposure_sweep_shipped_encoder_follows_exposure(tmp_path, faces_dir):
    """The shipped encoder (trained without colour jitter) makes a darker input's face darker: skin L* of the
    reconstruction rises with the input's brightness factor."""
    from training.evaluate.encoder import exposure_sweep

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "obama.jpg").symlink_to(faces_dir / "obama.jpg")
    rows = exposure_sweep(None, tmp_path / "photos", tmp_path, 0, [0.6, 1.0], threads=2)
    assert [r["factor"] for r in rows] == [0.6, 1.0]
    (dark, bright) = rows
    assert dark["lab_in"][0] < bright["lab_in"][0] - 15
    assert dark["lab_out"][0] < bright["lab_out"][0] - 20  # shipped: 30 L*; the leg-3 model moved only 14 here
