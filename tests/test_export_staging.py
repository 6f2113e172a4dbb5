"""Issue 18: an export killed mid-way (kill -9) leaves a `.staging.*` folder that is never served
and that the next export removes; a live export's staging folder is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from kbuild.exporter.layout import (
    STALE_UNOWNED_S,
    publish_version,
    remove_stale_staging,
    staging_owner,
    versions,
)
from tests.conftest import REPO

# A real export process: publish_version writing its version slowly, so the test can kill it mid-way.
SLOW_EXPORT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from kbuild.exporter.layout import publish_version

    def fill(staging):
        (staging / "saved_model.pb").write_bytes(b"half")
        print(staging, flush=True)
        time.sleep(60)

    publish_version(Path(sys.argv[1]), fill)
""")


def _start(code, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env)


def _kill9_mid_export(root):
    process = _start(SLOW_EXPORT, str(root))
    staging = process.stdout.readline().strip()
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    return staging


def test_next_export_removes_the_staging_folder_of_a_killed_one(tmp_path):
    root = tmp_path / "model"
    staging = _kill9_mid_export(root)
    assert staging and os.path.isdir(staging) and staging_owner(root / os.path.basename(staging))
    assert versions(root) == {}  # never served
    target = publish_version(root, lambda folder: (folder / "saved_model.pb").write_bytes(b"full"))
    assert target.name == "1" and not os.path.exists(staging)
    assert sorted(p.name for p in root.iterdir()) == ["1"]


def test_a_live_export_keeps_its_staging_folder(tmp_path):
    root = tmp_path / "model"
    process = _start(SLOW_EXPORT, str(root))
    try:
        staging = process.stdout.readline().strip()
        assert remove_stale_staging(root) == []
        publish_version(root, lambda folder: (folder / "saved_model.pb").write_bytes(b"full"))
        assert os.path.isdir(staging)
    finally:
        process.kill()
        process.wait(timeout=30)


def test_unowned_staging_folders_are_removed_only_when_old(tmp_path):
    old = tmp_path / ".staging.abc123"
    old.mkdir()
    other_host = tmp_path / ".staging.elsewhere.1.xyz"
    other_host.mkdir()
    assert remove_stale_staging(tmp_path) == []
    later = time.time() + STALE_UNOWNED_S + 1
    assert sorted(p.name for p in remove_stale_staging(tmp_path, now=later)) == [".staging.abc123", ".staging.elsewhere.1.xyz"]


@pytest.mark.slow
def test_kill9_of_kbuild_export(tiny_run, tmp_path):
    """The real command: `kbuild export` killed while it writes, then a second export succeeds
    and leaves only its own version."""
    root = tmp_path / "export"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "kbuild.cli", "export", str(tiny_run), "--out", str(root)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(root.glob(".staging.*/*")):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert list(root.glob(".staging.*")), "the export was not caught mid-way"
    subprocess.run(command, env=env, check=True, capture_output=True)
    assert sorted(p.name for p in root.iterdir()) == ["1"]


def test_a_published_version_has_normal_permissions_as_the_umask_allows(tmp_path):
    # mkdtemp makes its folder 0700; a serving account other than the exporter's must read versions.
    def fill(staging):
        (staging / "variables").mkdir()
        (staging / "saved_model.pb").write_bytes(b"pb")
        (staging / "variables" / "variables.index").write_bytes(b"index")

    previous = os.umask(0o022)
    try:
        version = publish_version(tmp_path / "m", fill)
        modes = {str(p.relative_to(version)): oct(p.stat().st_mode & 0o777) for p in [version, *version.rglob("*")]}
        assert modes == {".": "0o755", "variables": "0o755", "saved_model.pb": "0o644",
                         "variables/variables.index": "0o644"}
        os.umask(0o027)
        version = publish_version(tmp_path / "m", fill)
        assert oct(version.stat().st_mode & 0o777) == "0o750"
        assert oct((version / "saved_model.pb").stat().st_mode & 0o777) == "0o640"
    finally:
        os.umask(previous)
