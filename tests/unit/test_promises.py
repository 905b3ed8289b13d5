"""The promises of docs/security.md name the tests that prove them: each one must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]


def test_every_promise_names_a_test_that_exists():
    page = (REPO_DIR / "docs" / "security.md").read_text()
    section = page[page.index("## What the index promises"):page.index("## How each part is defended")]
    cited = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", section)
    assert len(cited) == section.count("\n| ") - 2  # one for each promise (not the header)
    for path, name in cited:
        tree = ast.parse((REPO_DIR / path).read_text())
        tests = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert name in tests, f"docs/security.md cites {path}::{name}, which is not there"
