"""Which versions a server holds, and picking up new ones while it runs, as TF Serving does: the
export folder is polled (`--file-system-poll-wait-seconds`), a new complete version is loaded
beside the served ones, then the served set is replaced in one assignment, so a request without
a version moves to the newest without an error; a version the policy drops is retired once its
requests in flight have been answered (`app.py`).

Only complete versions are candidates: a numbered folder holding saved_model.pb, or a chat model's
TFLite export (`kbuild.serve.repository`; kbuild's exports are staged in a hidden folder and renamed
into place). A folder that fails to load (one copied in file by file, still arriving) is logged and
retried once its files change, while the versions already served go on serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from kbuild.registry import Registry
from kbuild.serve.repository import ModelVersion, Repository, load_version, servable_versions

log = logging.getLogger("kbuild.serve")

Policy = Callable[[dict[int, Path]], dict[int, Path]]
VERSION_POLICIES: Registry[Policy] = Registry("model version policy")
VERSION_POLICIES.register("latest")(lambda found: {max(found): found[max(found)]} if found else {})
VERSION_POLICIES.register("all")(lambda found: dict(found))


def wanted_versions(root: Path, policy: str) -> dict[str, dict[int, Path]]:
    """Model name -> the versions `policy` selects among the complete ones. `root` is one model
    (numbered folders directly under it, named after the folder) or a folder of models."""
    select = VERSION_POLICIES.get(policy)
    own = servable_versions(root)
    found = {root.name: own} if own else {p.name: servable_versions(p) for p in sorted(root.iterdir()) if p.is_dir()}
    return {name: select(versions) for name, versions in found.items() if versions}


class Refresher:
    """One poll of a repository's export folder: load what is new, swap the served set.

    Args:
        repository: a repository loaded from a folder (its `root` and `policy` are used).
        report: told, in words, about each version loaded, retired or failing to load.
    """

    def __init__(self, repository: Repository, report: Callable[[str], None] = log.warning):
        self.repository, self.report = repository, report
        self._failed: dict[Path, tuple] = {}
        """Version folders that failed to load, with their files' state then: retried once it changes."""

    def poll(self) -> list[ModelVersion]:
        """Load new versions and serve the policy's set; return the versions no longer served."""
        repository = self.repository
        served = repository.models
        wanted = wanted_versions(repository.root, repository.policy) if repository.root.is_dir() else {}
        models: dict[str, dict[int, ModelVersion]] = {}
        for name, paths in wanted.items():
            current = served.get(name, {})
            loaded = {n: current[n] if n in current else self._load(name, n, path) for n, path in paths.items()}
            models[name] = {n: v for n, v in loaded.items() if v is not None} or current
        models.update({name: versions for name, versions in served.items() if name not in models})
        if _numbers(models) == _numbers(served):
            return []
        repository.models = models  # one assignment: requests see the old set or the new one
        retired = [v for name, versions in served.items() for n, v in versions.items() if n not in models.get(name, {})]
        for name, versions in models.items():
            for n in sorted(set(versions) - set(served.get(name, {}))):
                self.report(f"serving {name} version {n} (versions now {', '.join(map(str, sorted(versions)))})")
        for version in retired:
            self.report(f"retired {version.name} version {version.version} ({repository.policy} policy)")
        return retired

    def _load(self, name: str, number: int, path: Path) -> ModelVersion | None:
        state = _files_state(path)
        if self._failed.get(path) == state:
            return None
        try:
            version = load_version(name, number, path)
        except Exception as exc:  # noqa: BLE001  (a bad new version must not stop the served ones)
            self._failed[path] = state
            self.report(f"{name} version {number} not loaded; still serving the earlier version(s): {exc}; "
                        f"retried when its files change")
            return None
        self._failed.pop(path, None)
        return version


def _numbers(models: dict[str, dict[int, ModelVersion]]) -> dict[str, set[int]]:
    return {name: set(versions) for name, versions in models.items()}


def _files_state(path: Path) -> tuple:
    """Names, sizes and modification times of a version's files: changes while one is copied in."""
    state = []
    for file in sorted(path.rglob("*")):
        try:
            stat = file.stat()
        except OSError:
            continue
        state.append((str(file.relative_to(path)), stat.st_size, stat.st_mtime_ns))
    return tuple(state)
