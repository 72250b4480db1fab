"""Real photos for the encoder: UTKFace names, the held-out rule, the masked real-photo losses, a real-photo training
step, pseudo-targets on real photos (and their stored codes, judged by name), and the shipped encoder's recovered
float16 torch weights."""
from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import require

torch = require("torch")

from training.data.utkface import age_group, held_out_names, parse_name  # noqa: E402


def test_names_parse_with_missing_race():
    assert parse_name("26_1_3_20170117174500453.jpg.chip.jpg") == (26, 1, 3)
    assert parse_name("39_1_20170116174525125.jpg.chip.jpg") == (39, 1, -1)  # one of the three without race
    assert [age_group(a) for a in (0, 12, 13, 19, 20, 39, 40, 59, 60, 116)] == \
        ["0-12", "0-12", "13-19", "13-19", "20-39", "20-39", "40-59", "40-59", "60+", "60+"]


def test_held_out_rule_is_a_fixed_function_of_the_names():
    names = [f"{a}_{a % 2}_{a % 5}_2017010{a}.jpg.chip.jpg" for a in range(50)]
    held = held_out_names(names, n=10)
    assert len(set(held)) == 10 and held == held_out_names(list(reversed(names)), n=10)
    # adding names can only push a name out, never pull a non-held one in (lowest sha256)
    assert set(held_out_names(names + ["x.jpg"], n=10)) <= set(held) | {"x.jpg"}


def test_stored_quality_codes_are_judged_by_photo_name_not_the_users_code(tmp_path):
    from training.evaluate.utkface import stored_codes

    rng = np.random.default_rng(0)
    wplus, user = rng.standard_normal((2, 2, 23, 512)).astype(np.float32)
    path = tmp_path / "heldout.npz"
    np.savez(path, names=np.array(["b.jpg", "a.jpg"]), wplus=wplus, user=user, faceless=np.array([], dtype=str))
    codes = stored_codes(path)
    assert set(codes) == {"a.jpg", "b.jpg"}
    np.testing.assert_array_equal(codes["a.jpg"], wplus[1])
    np.testing.assert_array_equal(codes["b.jpg"], wplus[0])


def test_real_losses_ignore_the_padding():
    from training.train.encoder import real_image_losses

    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 128, 128, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, 128, 128)
    mask[..., 32:96, 32:96] = 1
    render = target.clone()
    render[..., :8, :] = -1  # differs only outside the mask
    out = real_image_losses(render, target, mask)
    assert float(out["real_l1"]) == 0.0 and float(out["real_msssim"]) < 1e-4
    render[..., 40:60, 40:60] = 1
    assert float(real_image_losses(render, target, mask)["real_l1"]) > 0


def test_recovered_fp16_weights_match_the_shipped_onnx():
    """resources/models/inversion_encoder_fp16.safetensors (recovered from the shipped ONNX by
    training/convert/encoder_from_onnx.py) reproduces the shipped parity reference within float16 rounding."""
    from engine.models import MODELS_DIR, load_manifest, sha256_file
    from training.convert.encoder_from_onnx import FP16_FILE, load_fp16, parity_against_reference

    if not FP16_FILE.is_file():
        pytest.skip("no recovered float16 weights")
    entry = load_manifest()["inversion_encoder_fp16"]
    assert entry.sha256 == sha256_file(FP16_FILE)
    ref = np.load(MODELS_DIR / "inversion_encoder_parity.npy")
    assert parity_against_reference(load_fp16()) < 2e-2 * max(1.0, float(np.abs(ref).max()))


def test_pseudo_targets_train_on_real_photos_and_keep_the_held_out_rule(tmp_path):
    """--pseudo: real UTKFace training photos, aligned as the app aligns them, with W+ targets; their latent loss is
    logged and falls, the held-out photos' loss is logged as validation, and a file that mixes the two sets up is
    refused either way."""
    import json

    from tests.test_encoder import _tiny_cache
    from training.data.utkface import UTK_DIR, split_names
    from training.train.encoder import make_config, train

    if not UTK_DIR.is_dir():
        pytest.skip(f"UTKFace photos not at {UTK_DIR}")
    torch.set_num_threads(2)
    data = _tiny_cache(tmp_path / "cache")
    stats = np.load(data / "stats.npz")
    rng = np.random.default_rng(1)

    def targets(names):
        w = stats["w_avg"] + stats["w_std"] * rng.standard_normal((len(names), 1, 512))
        return {"names": np.array(names), "wplus": w.repeat(23, 1).astype(np.float32)}

    train_names, held = split_names("train")[:3], held_out_names()[:2]
    np.savez(tmp_path / "train.npz", **targets(train_names))
    np.savez(tmp_path / "held.npz", **targets(held))
    cfg = make_config("tiny", data=str(data), steps=8, batch=2, aug_strength=0.0, threads=2, device="cpu",
                      pseudo=str(tmp_path / "train.npz"), pseudo_batch=3, pseudo_val=str(tmp_path / "held.npz"))
    train(cfg, tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["pseudo_mse"] < log[0]["pseudo_mse"]
    assert all(np.isfinite(e["val_pseudo_mse"]) and e["val_pseudo_mse"] > 0 for e in log)
    # --pseudo-slots: no loss on the slots from there on (0: none at all)
    train(make_config("tiny", data=str(data), steps=1, batch=2, device="cpu", pseudo=str(tmp_path / "train.npz"),
                      pseudo_slots=0), tmp_path / "none")
    assert json.loads((tmp_path / "none" / "log.jsonl").read_text().splitlines()[-1])["pseudo_mse"] == 0
    # --anchor: generated faces are held to the warm start's own codes, so its first step has nothing to learn there
    train(make_config("tiny", data=str(data), steps=1, batch=2, device="cpu", pseudo=str(tmp_path / "train.npz"),
                      init=str(tmp_path / "run" / "last.pt"), anchor=True, freeze_bn=True), tmp_path / "anchored")
    assert json.loads((tmp_path / "anchored" / "log.jsonl").read_text().splitlines()[-1])["mse"] < 1e-8
    from training.export.encoder import trained_on_utkface  # the photos' terms travel with the model

    assert trained_on_utkface(json.loads((tmp_path / "run" / "config.json").read_text()))
    assert not trained_on_utkface({"real": "", "pseudo": ""})
    with pytest.raises(SystemExit, match="--anchor needs --init"):
        train(make_config("tiny", data=str(data), steps=1, batch=2, device="cpu", anchor=True), tmp_path / "bad")
    for swapped in ({"pseudo": str(tmp_path / "held.npz")}, {"pseudo": str(tmp_path / "train.npz"),
                                                            "pseudo_val": str(tmp_path / "train.npz")}):
        with pytest.raises(SystemExit, match="UTKFace photos"):
            train(make_config("tiny", data=str(data), steps=1, batch=2, device="cpu", **swapped), tmp_path / "bad")


def test_a_training_step_with_real_photos_logs_their_losses_and_resumes(tmp_path, monkeypatch):
    """--real: a fake cached UTKFace split (noise photos, half of each crop padding) mixed into the tiny recipe; the
    real losses are logged, the identity term reads the photos, and a restart resumes from the checkpoint."""
    import json

    import training.data.utkface as utk
    from tests.test_encoder import _tiny_cache
    from training.convert.generator import load_weights
    from training.train.encoder import make_config, train

    torch.set_num_threads(2)
    folder = tmp_path / "utk" / "train"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = 6
    np.save(folder / "crop.npy", rng.integers(0, 255, (n, 256, 256, 3), dtype=np.uint8))
    valid = np.zeros((n, 256, 256), bool)
    valid[:, 64:192, 64:192] = True
    np.save(folder / "valid.npy", np.packbits(valid, axis=-1))
    np.save(folder / "oval.npy", np.packbits(valid, axis=-1))
    np.save(folder / "points.npy", np.zeros((n, 478, 3), np.float16))
    np.save(folder / "labels.npy", np.zeros((n, 3), np.int16))
    (folder / "names.txt").write_text("\n".join(f"fake_{i}.jpg" for i in range(n)) + "\n")
    monkeypatch.setattr(utk, "CACHE", tmp_path / "utk")
    monkeypatch.setattr(utk, "held_out_names", lambda names=None, n=0: ["not_in_this_cache.jpg"])
    data = _tiny_cache(tmp_path / "cache")
    gen = load_weights()
    cfg = make_config("tiny", data=str(data), steps=1, batch=2, aug_strength=0.0, threads=2, image_block=4,
                      real="train", real_batch=2, w_real_id=0.5, freeze_bn=True, device="cpu")
    train(cfg, tmp_path / "run", generator=gen)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert 0 < log[-1]["real_l1"] < 1 and 0 < log[-1]["real_msssim"] <= 1 and 0 <= log[-1]["real_id"] <= 2
    cfg2 = make_config("tiny", data=str(data), steps=2, batch=2, aug_strength=0.0, threads=2, image_block=4,
                       real="train", real_batch=2, freeze_bn=True, device="cpu")
    train(cfg2, tmp_path / "run", generator=gen)
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
