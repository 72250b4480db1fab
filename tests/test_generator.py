"""MobileStyleGAN: torch port vs the official OpenVINO IR, W+ semantics, ONNX vs torch, engine and CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import require

from engine.cli import main as cli_main
from engine.errors import BadInputError, ModelMissingError
from engine.generator import Generator
from engine.latents import N_SLOTS, load_latent, to_wplus
from engine.models import MODELS_DIR, load_manifest, resolve_model, sha256_file

SHARED = Path(__file__).resolve().parents[2] / "shared"


def psnr(a: np.ndarray, b: np.ndarray, peak_to_peak: float = 2.0) -> float:
    """PSNR for images in [-1, 1] (peak-to-peak range 2)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak_to_peak**2 / mse)


@pytest.fixture(scope="module")
def torch_model():
    require("torch")
    from training.convert.generator import load_official

    return load_official()


@pytest.fixture(scope="module")
def openvino_models():
    ov = require("openvino")
    from training.convert.random_face_weights import ir_dir

    folder = ir_dir()
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32"}  # the CPU plugin defaults to bf16 on AVX-512 BF16 CPUs
    return (core.compile_model(str(folder / "MappingNetwork.xml"), "CPU", config),
            core.compile_model(str(folder / "SynthesisNetwork.xml"), "CPU", config))


@pytest.fixture(scope="module")
def generator():
    return Generator.load(threads=2)


@pytest.mark.slow
def test_torch_matches_openvino_ir_for_8_random_z(torch_model, openvino_models):
    import torch

    ov_mapping, ov_synthesis = openvino_models
    z = np.random.default_rng(1234).standard_normal((8, 512)).astype(np.float32)
    for i in range(8):
        w_ir = ov_mapping(z[i : i + 1])[0]
        with torch.no_grad():
            w_torch = torch_model.mapping(torch.from_numpy(z[i : i + 1])).numpy()
            img_torch = torch_model.synthesis(torch.from_numpy(w_ir)).numpy()
        assert np.linalg.norm(w_torch - w_ir) / np.linalg.norm(w_ir) < 1e-4
        img_ir = ov_synthesis(w_ir)[0]
        assert img_torch.shape == img_ir.shape == (1, 3, 1024, 1024)
        assert psnr(img_torch, img_ir) >= 45.0
        assert np.linalg.norm(img_torch - img_ir) / np.linalg.norm(img_ir) <= 1e-3


@pytest.mark.slow
def test_w_repeated_in_every_slot_is_exactly_w(torch_model):
    import torch

    w = torch_model.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(0))).detach()
    with torch.no_grad():
        from_w = torch_model.synthesis(w)
        from_wplus = torch_model.synthesis(w[:, None].repeat(1, N_SLOTS, 1))
    assert torch.equal(from_w, from_wplus)


@pytest.mark.slow
def test_unused_slots_change_nothing_and_used_slots_do(torch_model):
    """Slots 3, 6, ..., 18 feed heads absent from the release; 22 is unused; the others matter."""
    import torch

    g = torch.Generator().manual_seed(1)
    wplus = torch_model.w_avg.expand(1, N_SLOTS, 512).clone()
    with torch.no_grad():
        base = torch_model.synthesis(wplus)
        for slot, used in [(0, True), (1, True), (2, True), (3, False), (18, False), (21, True), (22, False)]:
            edited = wplus.clone()
            edited[:, slot] += 3 * torch.randn(512, generator=g)
            changed = not torch.equal(torch_model.synthesis(edited), base)
            assert changed == used, f"slot {slot}"


@pytest.mark.slow
def test_onnx_matches_torch_for_w_and_wplus(torch_model, generator):
    import torch

    g = torch.Generator().manual_seed(7)
    w = torch_model.mapping(torch.randn(2, 512, generator=g)).detach()
    wplus = w[:, None].repeat(1, N_SLOTS, 1) + 0.3 * torch.randn(2, N_SLOTS, 512, generator=g)  # batch of 2
    for latent in (w[:1], wplus):
        with torch.no_grad():
            ref = torch_model.synthesis(latent).numpy()
        out = generator.synthesize(latent.numpy())
        assert out.shape == ref.shape
        assert psnr(out, ref) >= 45.0


@pytest.mark.slow
def test_onnx_mapping_and_w_avg_match_torch(torch_model, generator):
    import torch

    z = np.random.default_rng(3).standard_normal((4, 512)).astype(np.float32)
    with torch.no_grad():
        ref = torch_model.mapping(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(generator.map(z), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(generator.w_avg, torch_model.w_avg.numpy(), atol=1e-5)


def test_shipped_models_match_manifest():
    for name, entry in load_manifest().items():
        if entry.shipped:
            path = MODELS_DIR / entry.file
            assert path.is_file(), name
            assert sha256_file(path) == entry.sha256, name
            assert path.stat().st_size == entry.bytes < 40 * 2**20, name
            assert entry.source and entry.licence and entry.regenerate, name


def test_latent_shapes():
    w = np.zeros(512, np.float32)
    for shape in [(512,), (1, 512), (23, 512), (1, 23, 512)]:
        assert to_wplus(np.zeros(shape)).shape == (1, 23, 512)
    assert to_wplus(np.zeros((3, 512))).shape == (3, 23, 512)
    np.testing.assert_array_equal(to_wplus(w + 1)[0, 22], np.ones(512))
    for bad in [(511,), (23, 511), (1, 22, 512), (2, 2, 23, 512)]:
        with pytest.raises(BadInputError):
            to_wplus(np.zeros(bad))


def test_load_latent_rejects_bad_files(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "junk.npy").write_bytes(b"not a numpy file")
    np.save(tmp_path / "nan.npy", np.full(512, np.nan, np.float32))
    np.save(tmp_path / "shape.npy", np.zeros((4, 4), np.float32))
    for name in ["obj.npy", "junk.npy", "nan.npy", "shape.npy", "missing.npy"]:
        with pytest.raises(BadInputError):
            load_latent(tmp_path / name)


def test_missing_or_tampered_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelMissingError, match="not found"):
        resolve_model("mobilestylegan_synthesis", explicit=tmp_path / "nope.onnx")
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"onnx?")
    with pytest.raises(ModelMissingError, match="sha256"):
        resolve_model("mobilestylegan_synthesis", explicit=fake)


def _face_detector():
    from engine.landmarks import FaceLandmarker

    return FaceLandmarker(SHARED / "models" / "face_landmarker.task")


@pytest.mark.slow
def test_cli_generate_seeds_0_to_7_are_faces(tmp_path, capsys):
    import cv2

    with _face_detector() as detector:
        for seed in range(8):
            out = tmp_path / f"seed{seed}.png"
            assert cli_main(["generate", "--seed", str(seed), "--psi", "0.7", "--out", str(out)]) == 0
            image = cv2.imread(str(out))
            assert image.shape == (1024, 1024, 3)
            faces = detector.detect(image)
            assert len(faces) == 1, f"seed {seed}: {len(faces)} faces"
            x0, y0, x1, y1 = faces[0].bbox
            assert 300 < x1 - x0 < 800 and 250 < (x0 + x1) / 2 < 774, f"seed {seed}: face box {faces[0].bbox}"


@pytest.mark.slow
def test_cli_generate_renders_saved_latents_of_every_shape(tmp_path, generator):
    w = generator.sample_w(5, 0.7)
    reference = generator.render(w)
    for shape in [(512,), (1, 512), (23, 512), (1, 23, 512)]:
        path = tmp_path / f"w{len(shape)}_{shape[0]}.npy"
        np.save(path, to_wplus(w)[0, 0].reshape(shape) if shape[-2:] != (23, 512) else to_wplus(w).reshape(shape))
        out = tmp_path / "out.png"
        assert cli_main(["generate", "--latent", str(path), "--out", str(out)]) == 0
        import cv2

        rendered = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
        assert np.abs(rendered.astype(int) - reference.astype(int)).max() <= 1


def test_cli_generate_bad_input_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((7, 512), np.float32))
    assert cli_main(["generate", "--latent", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "latent" in err and "Traceback" not in err
    assert cli_main(["generate", "--out", str(tmp_path / "no_such_dir" / "o.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("args, says", [(["--seed", "-1"], "seed"), (["--psi", "nan"], "psi"), (["--psi", "inf"], "psi"),
                                        (["--size", "-5"], "--size"), (["--size", "100000"], "--size")])
def test_cli_generate_refuses_nonsense_numbers(tmp_path, capsys, args, says):
    out = tmp_path / "o.png"
    assert cli_main(["generate", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and "Traceback" not in err
    assert not out.exists()
