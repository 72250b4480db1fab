"""`celeblook models`: list the model files and where each resolves; `--download NAME` fetches one (checksum-pinned)."""
from __future__ import annotations

import argparse

from engine.errors import CelebLookError, ModelMissingError
from engine.models import (download_model, labelled_candidates, load_manifest, resolve_model, sha256_file,
                           user_cache_dir)


def describe(entry) -> str:
    """One line: where the model resolves (and whether its checksum holds), or what to do to get it."""
    for label, path in labelled_candidates(entry):
        if path.is_file():
            ok = sha256_file(path) == entry.sha256
            return f"{path} (from {label}; sha256 {'ok' if ok else 'MISMATCH: replace this file'})"
    try:
        resolve_model(entry.name, manifest={entry.name: entry})
    except ModelMissingError as exc:
        return f"MISSING: {exc}"
    return "found"  # unreachable unless the file appeared meanwhile


def run(args: argparse.Namespace) -> int:
    manifest = load_manifest()
    if args.download:
        name = args.download
        if name not in manifest:
            raise CelebLookError(f"unknown model '{name}'; known: {', '.join(sorted(manifest))}")
        entry = manifest[name]
        if not entry.url:
            raise CelebLookError(f"model '{name}' has no download URL: {entry.regenerate or 'it ships with the app'}")
        try:
            path = resolve_model(name, manifest=manifest)
            print(f"{name}: already present at {path} (sha256 ok)")
            return 0
        except ModelMissingError:
            pass
        try:
            path = download_model(entry)
        except ModelMissingError as exc:
            where = f"set {entry.env} to its path, or " if entry.env else ""
            raise ModelMissingError(f"{exc}. Offline? Get {entry.file} (sha256 {entry.sha256}) another way, "
                                    f"then {where}put it in {user_cache_dir() / 'models'}") from exc
        print(f"{name}: downloaded {entry.url} -> {path} (sha256 ok)")
        return 0
    for name, entry in manifest.items():
        print(f"{name:<28} {entry.file:<36} {describe(entry)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list model files and where they resolve; download one",
                              description=__doc__.splitlines()[0])
    p.add_argument("--download", metavar="NAME", help="download model NAME from its official URL into the user "
                                                      "cache, checked against the pinned sha256")
    p.set_defaults(func=run)
