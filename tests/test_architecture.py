"""The layering holds: the import contracts, and a spec that loads without tasks or TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_loading_a_spec_imports_no_task_module_and_no_tensorflow():
    loaded = _modules_after(
        "from kbuild.spec import Spec, load_spec\nload_spec('specs/quickstart.yaml'); Spec.model_json_schema()"
    )
    assert not {m for m in loaded if m.startswith("kbuild.tasks")}
    assert not {m for m in loaded if m.split(".")[0] in ("tensorflow", "keras", "keras_hub")}
    assert "kbuild.spec.root" in loaded  # the statement really loaded a spec


def test_the_task_checks_run_from_the_public_loader(tmp_path):
    from kbuild import load_spec
    from kbuild.errors import SpecError
    from kbuild.spec import load_spec as load_fields

    spec = tmp_path / "spec.yaml"
    spec.write_text((ROOT / "specs/quickstart.yaml").read_text().replace("task: classification", "task: clasification"))
    try:
        load_spec(spec)
    except SpecError as exc:
        assert 'did you mean "classification"' in str(exc) and ":task:" in str(exc).replace(" ", "")
    else:
        raise AssertionError("a misspelt task was accepted")
    assert load_fields(spec).task == "clasification"  # the spec layer alone does not know the tasks


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout
