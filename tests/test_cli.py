"""Every `celeblook` subcommand answers nonsense with one line on stderr and exit code 2: never a traceback, never a
silent exit 0, and nothing written."""
from __future__ import annotations

import pytest

from engine.cli import main as cli_main

PHOTO = "{faces}/obama.jpg"
VIDEO = "{videos}/d18.mp4"
CASES = [  # (arguments, a word the message must contain)
    ([], "command"),
    (["generate", "--seed", "-1"], "seed"),
    (["generate", "--psi", "nan"], "psi"),
    (["generate", "--size", "-5"], "--size"),
    (["generate", "--bogus", "1"], "unrecognized"),
    (["invert", "{tmp}"], "not a file"),
    (["invert", ""], "not a file"),
    (["invert", PHOTO, "--quality", "-3"], "--quality"),
    (["invert", PHOTO, "--identity-passes", "9"], "--identity-passes"),
    (["morph", PHOTO, "--to", PHOTO, "--strength", "nan"], "--strength"),
    (["morph", PHOTO, "--to", PHOTO, "--strength", "-0.5"], "--strength"),
    (["morph", PHOTO, "--to", PHOTO, "--strength", "2"], "--strength"),
    (["morph", PHOTO, "--to", PHOTO, "--target-quality", "-1"], "--target-quality"),
    (["morph", PHOTO, "--to", "{tmp}"], "not found"),
    (["morph", PHOTO, "--to", PHOTO, "--preset", "nope"], "--preset"),
    (["edit", PHOTO, "--yaw", "nan"], "finite"),
    (["edit", PHOTO, "--yaw", "1e9"], "calibrated"),
    (["edit", PHOTO, "--smile", "0.2", "--frames", "-3", "--gif", "{tmp}/s.gif"], "--frames"),
    (["edit", PHOTO, "--age", "500"], "calibrated"),
    (["edit", PHOTO, "--age", "nan"], "finite"),
    (["edit", PHOTO, "--gender", "-40"], "calibrated"),
    (["edit", PHOTO, "--age", "x"], "--age"),
    (["align", PHOTO, "--size", "3"], "--size"),
    (["align", "{tmp}"], "not a file"),
    (["bench", "pipeline", "--frames", "-1", "--videos", VIDEO], "--frames"),
    (["bench", "nonsense"], "nonsense"),
    (["bench", "refine", "--fit", "x40", "--photo", PHOTO], "not a fit recipe"),
    (["jitter", "{tmp}"], "not found"),
    (["flicker", VIDEO, "--frames", "-5"], "--frames"),
    (["calibrate", PHOTO, "--keyframes", "0"], "--keyframes"),
    (["calibrate", PHOTO, "--steps", "-1"], "--steps"),
    (["models", "--download", "nope"], "nope"),
]
NEEDS_OUT = {"generate", "invert", "morph", "edit", "align", "calibrate"}


@pytest.mark.parametrize("args, says", CASES, ids=[" ".join(a[:1] + a[2:3]) or "none" for a, _ in CASES])
def test_nonsense_is_one_line_and_exit_2(args, says, tmp_path, faces_dir, videos_dir, capsys):
    args = [a.format(faces=faces_dir, videos=videos_dir, tmp=tmp_path) for a in args]
    out = tmp_path / "out.npz" if args[:1] == ["calibrate"] else tmp_path / "out.png"
    if args[:1] and args[0] in NEEDS_OUT:
        args += ["--out", str(out)]
    try:
        rc = cli_main(args)
    except SystemExit as exc:  # argparse's own refusals
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("celeblook")]
    assert len(lines) == 1 and says in lines[0], err
    assert "Traceback" not in err
    assert not out.exists()

