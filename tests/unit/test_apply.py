"""Applying plans (ppc_tasks/apply.py): a step that takes a while says so, on a terminal
and in a log; every run leaves one audit line."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

from ppc_tasks import apply
from ppc_tasks.apply import audit_line


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_step(monkeypatch, output, seconds: float, watched: bool = False) -> str:
    monkeypatch.setattr(apply, "SLOW_STEP", 0.1)
    monkeypatch.setattr(apply.sys, "stdout", output)
    with apply.Host.progress(SimpleNamespace(name="pypi1"), "image.server", watched):
        time.sleep(seconds)
    return output.getvalue()


def test_a_quick_step_says_nothing(monkeypatch):
    assert run_step(monkeypatch, io.StringIO(), 0) == ""
    assert run_step(monkeypatch, Terminal(), 0) == ""


def test_in_a_log_a_slow_step_says_once_that_it_runs(monkeypatch):
    assert run_step(monkeypatch, io.StringIO(), 0.3) == \
        "[pypi1] image.server       running   (a step that takes a while)\n"


def test_on_a_terminal_a_live_line_counts_and_is_cleared(monkeypatch):
    shown = run_step(monkeypatch, Terminal(), 1.3)
    assert shown.startswith("\r[pypi1] image.server       running   0 s\x1b[K")
    assert "running   1 s" in shown and shown.endswith("\r\x1b[K")


def test_a_streamed_build_needs_no_progress_line(monkeypatch):
    assert run_step(monkeypatch, Terminal(), 0.3, watched=True) == ""


def test_audit_lines_are_one_line_and_name_no_secret():
    import datetime
    line = audit_line(datetime.datetime(2026, 11, 25, 16, 0, tzinfo=datetime.timezone.utc),
                      "ops@laptop", "deploy", "sha256:abc", "failed: two\nlines", ["a", "b"])
    assert line == ("2026-11-25T16:00:00Z operator=ops@laptop task=deploy settings=sha256:abc "
                    "result=failed: two lines changed=a,b")
