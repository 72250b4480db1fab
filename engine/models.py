"""Model files: the manifest in resources/models/manifest.json, path resolution, checksums, downloads.

Resolution order for a model named N (first hit wins):
  1. an explicit path given by the caller (e.g. a CLI flag);
  2. the environment variable named in the manifest entry (e.g. CELEBLOOK_FACE_LANDMARKER);
  3. $CELEBLOOK_MODEL_DIR/<file>;
  4. the copy shipped in resources/models/;
  5. the user cache, $XDG_CACHE_HOME/celeblook/models/<file> (~/.cache/...);
  6. a download from the entry's official URL, only when the caller allows it, checked against the pinned
     sha256 and written atomically into the user cache.
Nothing is downloaded implicitly: the app opens no network connection unless a download is requested.
"""
from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import numpy as np

from engine.atomic import atomic_path
from engine.errors import BadInputError, ModelMissingError

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
MODELS_DIR = RESOURCES_DIR / "models"
MANIFEST_PATH = MODELS_DIR / "manifest.json"


@dataclass(frozen=True)
class ModelEntry:
    """One manifest entry: what the file is, where it comes from and how to rebuild it."""

    name: str
    file: str
    sha256: str
    bytes: int
    source: str
    licence: str
    regenerate: str = ""
    url: str = ""
    env: str = ""
    shipped: bool = True
    data: str = ""  # training data beyond the generator's own faces (e.g. real photos, with their terms)


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, ModelEntry]:
    """Read the model manifest into {name: ModelEntry}."""
    data = json.loads(Path(path).read_text())
    return {name: ModelEntry(name=name, **fields) for name, fields in data["models"].items()}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/celeblook (default ~/.cache/celeblook)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "celeblook"


def labelled_candidates(entry: ModelEntry, explicit: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Where to look for a model, in resolution order (without the download), each with where it came from."""
    paths: list[tuple[str, Path]] = []
    if explicit:
        paths.append(("explicit path", Path(explicit)))
    if entry.env and os.environ.get(entry.env):
        paths.append((f"${entry.env}", Path(os.environ[entry.env])))
    if os.environ.get("CELEBLOOK_MODEL_DIR"):
        paths.append(("$CELEBLOOK_MODEL_DIR", Path(os.environ["CELEBLOOK_MODEL_DIR"]) / entry.file))
    paths.append(("shipped resources", MODELS_DIR / entry.file))
    paths.append(("user cache", user_cache_dir() / "models" / entry.file))
    return paths


def candidate_paths(entry: ModelEntry, explicit: str | os.PathLike | None = None) -> list[Path]:
    """Where to look for a model, in resolution order (without the download)."""
    return [path for _, path in labelled_candidates(entry, explicit)]


def resolve_model(name: str, explicit: str | os.PathLike | None = None, allow_download: bool = False,
                  verify: bool = True, manifest: dict[str, ModelEntry] | None = None) -> Path:
    """Return the path of model `name`, checked against its sha256; raise ModelMissingError with advice."""
    manifest = manifest or load_manifest()
    if name not in manifest:
        raise ModelMissingError(f"unknown model '{name}' (not in {MANIFEST_PATH})")
    entry = manifest[name]
    for origin, path in labelled_candidates(entry, explicit):
        if path.is_file():
            if verify and sha256_file(path) != entry.sha256:
                raise ModelMissingError(
                    f"{path} is not the expected {entry.name} model (sha256 mismatch: damaged, truncated or "
                    f"altered; expected {entry.sha256})")
            return path
        if origin == "explicit path" or origin == f"${entry.env}":
            # the user named this file: say so rather than silently looking elsewhere
            raise ModelMissingError(f"model file not found: {path} (from {origin})")
    if allow_download and entry.url:
        return download_model(entry)
    where = [f"set {entry.env}=/path/to/{entry.file}"] if entry.env else []
    where += [f"put it in {user_cache_dir() / 'models'}"]
    if entry.url:
        where += [f"or download it once (celeblook models --download {name}) from {entry.url}"]
    elif entry.regenerate:
        where += [f"or regenerate it: {entry.regenerate}"]
    raise ModelMissingError(f"model '{name}' ({entry.file}) not found: " + "; ".join(where))


def missing_download(name: str, explicit: str | os.PathLike | None = None,
                     manifest: dict[str, ModelEntry] | None = None) -> ModelEntry | None:
    """The entry of model `name` when it is found nowhere and its download would fix that (it has a URL and no
    path was named by the caller or its environment variable); else None (found, or a download would not help)."""
    entry = (manifest or load_manifest())[name]
    candidates = labelled_candidates(entry, explicit)
    if not entry.url or any(origin in ("explicit path", f"${entry.env}") for origin, _ in candidates):
        return None
    return None if any(path.is_file() for _, path in candidates) else entry


def check_shipped(path: str | os.PathLike, models_dir: Path = MODELS_DIR, manifest_path: Path = MANIFEST_PATH) -> None:
    """A file in the shipped models folder must be the one its manifest entry pins (a truncated or altered model is
    refused, not used): BadInputError on a sha256 mismatch or a shipped file the manifest does not list. Files
    elsewhere (a development fit passed by path) are not checked."""
    path = Path(path)
    if path.resolve().parent != Path(models_dir).resolve():
        return
    entries = [e for e in load_manifest(manifest_path).values() if e.file == path.name]
    if not entries:
        raise BadInputError(f"{path} is in the shipped models folder but not in its manifest")
    if sha256_file(path) != entries[0].sha256:
        raise BadInputError(f"{path} is not the shipped {entries[0].name} model (sha256 mismatch: damaged or altered; "
                            f"reinstall, or regenerate: {entries[0].regenerate or 'see the manifest'})")


def load_npz_model(path: str | os.PathLike, required_keys: Iterable[str], what: str, remedy: str,
                   missing_error: type[Exception] = ModelMissingError,
                   check: Callable[[dict, dict], None] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and the JSON `meta` of an npz file with metadata (no pickle), e.g. a fitted model: `missing_error`
    "{what} not found: path ({remedy})" when there is no file; BadInputError "path is not a CelebLook {what}
    ({remedy})" when it is unreadable, lacks `meta` or one of `required_keys`, or `check(arrays, meta)` raises
    ValueError or KeyError; a shipped file must match its manifest's sha256 (check_shipped)."""
    path = Path(path)
    if not path.is_file():
        raise missing_error(f"{what} not found: {path} ({remedy})")
    check_shipped(path)
    try:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files if k != "meta"}
            meta = json.loads(str(d["meta"]))
        absent = [k for k in required_keys if k not in arrays]
        if absent:
            raise KeyError(", ".join(absent))
        if check is not None:
            check(arrays, meta)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{path} is not a CelebLook {what} ({remedy})") from exc
    return arrays, meta


Fetch = Callable[..., BinaryIO]  # fetch(url, timeout=...) -> a readable binary response (urllib's urlopen)


def download_model(entry: ModelEntry, dest_dir: Path | None = None, timeout: float = 60.0,
                   fetch: Fetch = urllib.request.urlopen) -> Path:
    """Download `entry.url` into the user cache, verify the pinned sha256, write atomically: a wrong or broken
    download leaves nothing behind and raises ModelMissingError. `fetch` opens the URL (tests pass a fake)."""
    dest_dir = dest_dir or user_cache_dir() / "models"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / entry.file
    h = hashlib.sha256()
    try:
        with fetch(entry.url, timeout=timeout) as response, atomic_path(dest) as tmp:
            with open(tmp, "wb") as f:
                while block := response.read(1 << 20):
                    h.update(block)
                    f.write(block)
            if h.hexdigest() != entry.sha256:
                raise ModelMissingError(
                    f"download of {entry.name} from {entry.url} has sha256 {h.hexdigest()}, expected {entry.sha256}")
    except OSError as exc:
        raise ModelMissingError(f"could not download {entry.name} from {entry.url}: {exc}") from exc
    return dest
