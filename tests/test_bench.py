"""Benchmark commands: model stats from ONNX graphs, the pipeline benchmark's report and budget check."""
from __future__ import annotations

import json

import cv2
import numpy as np

import pytest
from tests.conftest import require

from engine.cli import main as cli_main
from engine.model_stats import onnx_stats
from engine.models import resolve_model
from engine.pipeline_bench import BUDGETS_PATH, check_budgets


def test_generator_macs_and_params_match_the_architecture():
    require("onnx")
    stats = onnx_stats(resolve_model("mobilestylegan_synthesis"))
    assert 7.9e6 < stats.params < 8.1e6  # synthesis parameters incl. baked noise maps
    assert 7.0e9 < stats.macs < 7.6e9  # hand count from DESIGN.md's per-block figures, minus the IDWT convs
    assert onnx_stats(resolve_model("mobilestylegan_synthesis"), batch=2).macs == 2 * stats.macs


def test_budget_check_reports_only_missed_budgets():
    report = {"budgets": [{"budget": "laptop", "measure": "fps", "value": 25.0, "limit": ">= 20", "ok": True},
                          {"budget": "phone", "measure": "ms", "value": 90.0, "limit": "<= 33", "ok": False}]}
    assert check_budgets(report, ["laptop"]) == []
    missed = ["phone: ms = 90.0 (limit <= 33)"]
    assert check_budgets(report, []) == missed  # no names: every budget
    assert check_budgets(report, ["laptop", "phone"]) == missed
    budgets = json.loads(BUDGETS_PATH.read_text())
    assert budgets["laptop"]["min_fps"] == 20 and budgets["laptop"]["min_face_refresh_hz"] == 12
    assert budgets["laptop"]["max_latency_ms"] == 150 and budgets["phone"]["max_model_ms"] == 33


def test_bench_check_without_names_fails_on_any_missed_budget(tmp_path, videos_dir, monkeypatch, capsys):
    """`bench --check` judges every budget: an unreachable one exits 1 and says which; reachable ones exit 0."""
    import engine.pipeline_bench as pb

    budgets = json.loads(BUDGETS_PATH.read_text())
    args = ["bench", "--threads", "1", "--frames", "2", "--videos", str(videos_dir / "d18.mp4"), "--check"]
    for name, limits, code in (("easy", {"min_fps": 0, "min_face_refresh_hz": 0, "max_latency_ms": 1e9,
                                         "max_model_ms": 1e9}, 0),
                               ("hard", {"min_fps": 0, "min_face_refresh_hz": 0, "max_latency_ms": 1e9,
                                         "max_model_ms": 0.001}, 1)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({k: {**v, **{n: x for n, x in limits.items() if n in v}}
                                    for k, v in budgets.items()}))
        monkeypatch.setattr(pb, "BUDGETS_PATH", path)
        assert cli_main(args) == code, name
        out = capsys.readouterr().out
        assert ("OVER BUDGET: phone" in out) == bool(code)


@pytest.mark.slow
def test_bench_pipeline_writes_a_report_with_fps(tmp_path, videos_dir, capsys):
    out = tmp_path / "bench.json"
    rc = cli_main(["bench", "--threads", "2", "--frames", "3", "--videos", str(videos_dir / "d18.mp4"),
                   "--json", str(out)])
    assert rc == 0  # without --check the numbers are reported, not judged
    report = json.loads(out.read_text())
    assert report["fps"] > 0 and report["identity_feedback"], "the app's live loop, feedback included"
    modes = {r["mode"]: r for r in report["runs"]}
    assert modes["sync, every frame"]["renders"] == 3 and modes["sync, every frame"]["faces"] == 3
    assert modes["sync, reuse"]["renders"] <= 3
    # background modes: the first face is waited for, later ones may still be rendering when the clip ends
    assert 1 <= modes["background, reuse"]["renders"] <= 3 and modes["background, every frame"]["faces"] == 3
    assert set(report["runs"][0]["median_ms"]) >= {"decode", "landmarks", "encode", "generate", "paste", "display"}
    assert all(r["latency_ms"] > 0 for r in report["runs"]), "capture-to-face latency measured in every mode"
    printed = capsys.readouterr().out
    assert "per-stage median ms" in printed and "budgets" in printed


def test_bench_data_paths_are_arguments(capsys):
    """The engine does not know where the shared data is: without --videos / --photo the benchmarks say what to pass."""
    assert cli_main(["bench", "--threads", "1"]) == 2
    assert "--videos" in capsys.readouterr().err
    for target in ("encoder", "refine"):
        assert cli_main(["bench", target, "--threads", "1"]) == 2
        assert "--photo" in capsys.readouterr().err


def test_bench_encoder_times_a_chosen_export(tmp_path, face_photo, capsys):
    """--encoder times a development export (here: a copy of the shipped one); a missing file is a clear error."""
    export = tmp_path / "inversion_encoder.onnx"
    export.write_bytes(resolve_model("inversion_encoder").read_bytes())
    out = tmp_path / "encoder.json"
    photo = str(face_photo("obama.jpg"))
    assert cli_main(["bench", "encoder", "--threads", "1", "--repeats", "2", "--encoder", str(export),
                     "--photo", photo, "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["threads"] == 1 and row["input_px"] == 160 and row["median_ms"] > 0
    assert cli_main(["bench", "encoder", "--threads", "1", "--photo", photo,
                     "--encoder", str(tmp_path / "missing.onnx")]) == 2
    assert "missing.onnx" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_refine_reports_the_quality_mode_parts(tmp_path, face_photo, capsys):
    """`bench refine` times one objective step, one colour anchor, a whole (short) run and the refined latent's fit
    to the live student; a photo without a face is a clear error."""
    out = tmp_path / "refine.json"
    assert cli_main(["bench", "refine", "--threads", "2", "--repeats", "2", "--steps", "2",
                     "--fit", "x2c2of24lr0.03p1", "--photo", str(face_photo("biden.jpg")), "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["objective_step_ms"] > 0 and row["colour_anchor_ms"] > 0 and row["quality_mode_s"] > 0
    assert row["student_fit_s"]["x2c2of24lr0.03p1"] > 0
    assert "quality_mode_s" in capsys.readouterr().out
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((200, 200, 3), 128, np.uint8))
    assert cli_main(["bench", "refine", "--threads", "1", "--photo", str(wall)]) == 2
    assert "no face" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_generator_times_onnxruntime_and_training_adds_the_openvino_ir(tmp_path):
    """`celeblook bench generator` times the shipped ONNX alone (the engine never needs openvino); the comparison with
    the official IR is training's command, which adds an IR row per thread count (n/a without openvino or the IR)."""
    from training.evaluate.bench_openvino import main as bench_openvino

    out = tmp_path / "generator.json"
    assert cli_main(["bench", "generator", "--threads", "1", "--repeats", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["runtime"] for r in rows] == ["onnxruntime fp32"] and rows[0]["median_ms"] > 0
    bench_openvino(["--threads", "1", "--repeats", "1", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [(r["runtime"], r["threads"]) for r in rows] == [("onnxruntime fp32", 1), ("openvino IR f32", 1)]
