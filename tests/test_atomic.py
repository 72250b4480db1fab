"""engine/atomic.py: reports and manifests are replaced whole or not at all."""
from __future__ import annotations

import json

import pytest

from engine.atomic import write_json_atomic
from engine.errors import CelebLookError


def test_json_written_whole_and_old_file_kept_on_failure(tmp_path):
    target = tmp_path / "report.json"
    write_json_atomic(target, {"rows": [1, 2]})
    assert json.loads(target.read_text()) == {"rows": [1, 2]} and target.read_text().endswith("\n")
    with pytest.raises(TypeError):  # not serialisable: the previous report stays as it was
        write_json_atomic(target, {"rows": object()})
    assert json.loads(target.read_text()) == {"rows": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"], "no temporary file left"


def test_json_into_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CelebLookError, match="output folder does not exist"):
        write_json_atomic(tmp_path / "missing" / "report.json", {})
