"""Hypothesis profiles for the fuzz suite, and the outcome counts it reports.

`fast` (the default, run by `make test`): seeded (derandomized), a few hundred cases in all, no
example database, so every run tries the same cases. `fuzz` (`make fuzz`): thousands of random
cases; `KBUILD_FUZZ_EXAMPLES` scales it. Choose with `--hypothesis-profile=fuzz` or
`KBUILD_FUZZ_PROFILE=fuzz`. The counts per target (cases, clean errors, accepted-valid) are
printed at the end and, with `KBUILD_FUZZ_REPORT=FILE`, written there as JSON (by
tests/conftest.py, which the main pytest process loads also when pytest-xdist runs the tests in
others).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("fast", max_examples=60, derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("KBUILD_FUZZ_EXAMPLES", "1500")), database=None,
                          print_blob=True, **_COMMON)
settings.load_profile(os.environ.get("KBUILD_FUZZ_PROFILE", "fast"))
