"""The README and docs/ as a reader meets them: what the code defines is written from it,
every page is linked, the front page is short, and nothing speaks of history."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ppc_tasks import overview

REPO_DIR = Path(__file__).resolve().parents[2]
PAGES = sorted(path.relative_to(REPO_DIR).as_posix() for path in (REPO_DIR / "docs").glob("*.md"))
# Words that tell the story of the project instead of what it does.
HISTORY = re.compile(r"(?i)\b(this release|an? (?:older|earlier) release|from before|"
                     r"the manual procedure|used to)\b")


@pytest.mark.parametrize("name, marker", sorted(overview.generated()))
def test_what_the_code_defines_is_written_from_it(name, marker):
    text = (REPO_DIR / name).read_text()
    assert overview.filled(text, marker, overview.generated()[name, marker]) == text, \
        "run: python -m ppc_tasks.overview"


def test_every_task_is_in_one_group_of_the_readme():
    grouped = [name for _, names in overview.GROUPS for name in names]
    assert sorted(grouped) == sorted(set(grouped))
    assert set(grouped) == set(overview.task_names()) - {"backup"}  # backup is backup.create


def test_the_readme_is_a_front_page_that_links_every_page():
    readme = (REPO_DIR / "README.md").read_text()
    assert readme.count("\n") < 250
    linked = set(re.findall(r"\]\(((?:docs/)?[\w.-]+\.md)(?:#[\w-]+)?\)", readme))
    assert set(PAGES) <= linked, set(PAGES) - linked
    for target in linked | set(re.findall(r"\]\(([A-Z]+)\)", readme)):
        assert (REPO_DIR / target).exists(), target


@pytest.mark.parametrize("name", ["README.md", "CHANGELOG.md", *PAGES])
def test_links_between_pages_lead_somewhere(name):
    text = (REPO_DIR / name).read_text()
    for target in re.findall(r"\]\(([\w./-]+\.md)(?:#[\w-]+)?\)", text):
        assert (REPO_DIR / name).parent.joinpath(target).resolve().exists(), f"{name}: {target}"


@pytest.mark.parametrize("name", ["README.md", *PAGES])
def test_no_page_tells_history(name):
    found = HISTORY.findall((REPO_DIR / name).read_text())
    assert not found, f"{name}: {found}"


def test_the_readme_s_settings_examples_are_settings_ppc_takes():
    from invoke.vendor import yaml  # what Invoke reads fabric.yaml with

    from ppc_tasks.settings import Settings

    blocks = [yaml.safe_load(block) for block in
              re.findall(r"```yaml\n(.*?)```", (REPO_DIR / "README.md").read_text(), re.S)]
    examples = [block["ppc"] for block in blocks if isinstance(block, dict) and "ppc" in block]
    assert examples
    for example in examples:
        assert Settings.from_config(example, host="pypi-internal")
