"""`kbuild report`: one self-contained HTML page per run, comparison of runs, or search folder.

    from kbuild.report import build_report
    build_report(["runs/sst2-bilstm/20260101-120000"])   # -> that folder's report.html
"""

from __future__ import annotations

from kbuild.lazy import lazy_getattr

_LAZY = {
    "build_report": "kbuild.report.render:build_report",
    "Report": "kbuild.report.render:Report",
    "ReportOptions": "kbuild.report.sections:ReportOptions",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
