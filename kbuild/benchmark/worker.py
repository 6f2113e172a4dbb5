"""One benchmark configuration in a fresh process: `python -m kbuild.benchmark.worker`.

Reads {"spec", "overrides", "config", "steps", "warmup"} as JSON on stdin; prints the row as one
line prefixed with `ROW_MARKER` on stdout. Errors are rows too; only a crash of the process
itself (killed, out of memory) leaves the runner to describe it from the exit code.
"""

from __future__ import annotations

import json
import sys

from kbuild.benchmark.configs import BenchConfig
from kbuild.benchmark.measure import measure, one_line
from kbuild.benchmark.report import BenchRow
from kbuild.benchmark.runner import ROW_MARKER


def main() -> None:
    request = json.load(sys.stdin)
    config = BenchConfig.from_dict(request["config"])
    row = _prepare(request, config) or measure(request["spec"], request["overrides"], config,
                                               request["steps"], request["warmup"])
    print(ROW_MARKER + json.dumps(row.to_dict()), flush=True)


def _prepare(request: dict, config: BenchConfig) -> BenchRow | None:
    """Start TensorFlow with the devices this configuration needs; an error row if it cannot."""
    from kbuild.runtime import init_tensorflow
    from kbuild.tasks.checks import load_spec

    try:
        spec = load_spec(request["spec"], [*request["overrides"], *config.overrides()])
        # kbuild.training imports Keras (and TensorFlow): only once the spec is known to be valid.
        from kbuild.training.strategy import prepare_devices

        init_tensorflow(before_start=lambda: prepare_devices(spec.train))
    except Exception as exc:  # noqa: BLE001  (reported in the row, by design)
        return BenchRow.failed(config, one_line(exc))
    return None


if __name__ == "__main__":
    main()
