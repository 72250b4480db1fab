"""The live-view generator's distillation recipe (training/train/live_generator.py): its pruning keeps the channel
groups the inverse Haar transform reads together, so pruning nothing reproduces the teacher exactly, and its slim
fp16 weights round-trip."""
from __future__ import annotations

import pytest
from tests.conftest import require

pytestmark = pytest.mark.slow  # loads the torch generator
torch = require("torch")


@pytest.fixture(scope="module")
def teacher():
    from training.convert.generator import load_official
    from training.train.preview_heads import load_preview_heads

    return load_preview_heads(load_official()).eval().requires_grad_(False)


def test_haar_groups_take_each_kept_output_with_its_three_high_bands():
    from training.train.live_generator import haar_groups

    keep = haar_groups(torch.tensor([0, 5]), 512)  # 512 channels: 128 low, then 3 high bands per output
    assert keep.tolist() == [0, 5, 128, 129, 130, 143, 144, 145]


def test_pruning_nothing_is_the_teacher(teacher, monkeypatch):
    """With the teacher's own widths every channel is kept: the student renders the 256-px preview exactly; with the
    live widths it renders a 256-px image from the same code."""
    import training.train.live_generator as lg

    w = teacher.truncate(teacher.mapping(torch.randn(2, 512, generator=torch.Generator().manual_seed(3))), 0.7)
    wplus = w[:, None].repeat(1, 23, 1)
    with torch.no_grad():
        want = teacher.synthesis(wplus, out_block=4)
        monkeypatch.setattr(lg, "LIVE_CHANNELS", (512, 512, 512, 512, 512, 256))
        same = lg.prune_from_teacher(teacher.synthesis, wplus)(wplus)
        monkeypatch.undo()
        narrow = lg.prune_from_teacher(teacher.synthesis, wplus)
        out = narrow(wplus)
        tail = lg.tail(narrow, teacher.synthesis.features(wplus, 2), wplus)
    assert torch.allclose(same, want, atol=1e-4), float((same - want).abs().max())
    assert out.shape == (2, 3, 256, 256) and torch.allclose(out, tail, atol=1e-5)


def test_slim_weights_round_trip(teacher, tmp_path):
    import training.train.live_generator as lg

    wplus = torch.zeros(1, 23, 512) + teacher.w_avg
    student = lg.prune_from_teacher(teacher.synthesis, wplus)
    path = tmp_path / "live.safetensors"
    lg.save_slim(student, path)
    loaded = lg.load_live_synthesis(path, teacher)
    with torch.no_grad():
        a, b = student(wplus), loaded(wplus)
    assert (a - b).abs().max() < 0.05  # fp16 weights
    assert path.stat().st_size < 5e6  # only blocks 3-4: the released blocks are not duplicated


def test_the_kept_live_generator_renders_the_released_networks_face_and_exports_to_onnx(teacher, tmp_path):
    """The trained student kept in the repository (the next leg's warm start) renders the released network's face at
    256 px (the pruned, untrained student is ~11 dB from it; the kept one ~26), and its ONNX export renders the
    same image."""
    import torch.nn.functional as F

    import training.train.live_generator as lg
    from engine.onnx_session import make_session
    from training.export.generator import export

    w = teacher.truncate(teacher.mapping(torch.randn(2, 512, generator=torch.Generator().manual_seed(11))), 0.7)
    wplus = w[:, None].repeat(1, 23, 1)
    student = lg.load_live_synthesis(teacher=teacher)
    with torch.no_grad():
        image = student(wplus)
        released = F.interpolate(teacher.synthesis(wplus), size=(256, 256), mode="area")
    assert lg.psnr(image, released) > 24.0
    path = tmp_path / "live.onnx"
    export(student, torch.zeros(1, 23, 512), path, "wplus", "image")
    onnx = make_session(path, 1).run(None, {"wplus": wplus.numpy()})[0]
    assert abs(onnx - image.numpy()).max() < 2e-3
