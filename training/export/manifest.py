"""Read-modify-write of resources/models/manifest.json, the engine's list of shipped models with their checksum,
provenance and regenerate command; and the provenance every model derived from the generator's weights cites."""
from __future__ import annotations

import json
from pathlib import Path

from engine.atomic import write_json_atomic
from engine.models import MANIFEST_PATH, sha256_file

SOURCE = ("official MobileStyleGAN FFHQ-1024 weights (OpenVINO IR in PyPI random-face==2021.7.21.1, "
          "by the MobileStyleGAN author), converted by training/convert/generator.py")
LICENCE = "Apache-2.0 (random-face / MobileStyleGAN.pytorch); FFHQ-trained StyleGAN2 teacher"
REGENERATE = "python -m training.export.generator"


def update_manifest(entries: dict[str, dict]) -> None:
    """Merge `entries` into resources/models/manifest.json (keeps other models)."""
    data = json.loads(MANIFEST_PATH.read_text())
    data["models"].update(entries)
    write_json_atomic(MANIFEST_PATH, data)


def entry(path: Path, description: str) -> dict:
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
            "source": f"{description}; {SOURCE}", "licence": LICENCE, "regenerate": REGENERATE, "shipped": True}
