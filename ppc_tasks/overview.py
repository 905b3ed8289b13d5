"""The parts of the README and docs/ that the code defines: the tasks, grouped as an
operator looks for them, each with its `ppc --list` line; the settings people change
most; every setting. `python -m ppc_tasks.overview` writes them between their markers
(<!-- tasks --> ... <!-- /tasks -->); a unit test keeps the files the same."""

from __future__ import annotations

import re
from pathlib import Path

from .cli import namespace
from .settings import SETTINGS, readme_table

GROUPS = (
    ("Set up and run the index", ("init", "config", "trust", "deploy", "status", "logs",
                                  "host.bootstrap")),
    ("Developer and CI machines", ("clients.configure", "clients.export", "clients.setup",
                                   "clients.unconfigure", "certs.trust")),
    ("Packages", ("packages.upload", "packages.yank", "packages.unyank")),
    ("Publishing from CI", ("tokens.create", "tokens.list", "tokens.revoke")),
    ("Day two", ("backup.create", "backup.verify", "restore", "rollback", "audit",
                 "metrics.scrape-config")),
    ("Scale out", ("balancer.deploy", "storage.migrate")),
    ("One part of a deploy at a time", ("image.build", "data.create", "server.deploy",
                                        "certs.install", "nginx.configure", "server.remove",
                                        "data.destroy")),
)


def task_names(collection=namespace, prefix: str = "") -> dict:
    """Every task by its dotted name."""
    found = {prefix + name: task for name, task in collection.tasks.items()}
    for name, child in collection.collections.items():
        found.update(task_names(child, f"{prefix}{name}."))
    return found


def summary(task) -> str:
    return " ".join(task.__doc__.strip().split("\n\n")[0].split())


def readme_tasks() -> str:
    tasks = task_names()
    lines = []
    for title, names in GROUPS:
        lines += [f"**{title}**", ""]
        lines += [f"- `{name}`: {summary(tasks[name])}" for name in names]
        lines.append("")
    return "\n".join(lines)


# The eight settings the README's front page names.
COMMON_SETTINGS = ("server_names", "private_names", "fallback", "users", "owners",
                   "max_upload_size", "tls_cert", "build_ca_bundle")


def generated() -> dict[tuple[str, str], str]:
    """(file, marker): the text between the marker's lines."""
    common = tuple(setting for setting in SETTINGS if setting.key in COMMON_SETTINGS)
    return {("README.md", "tasks"): readme_tasks(),
            ("README.md", "settings"): readme_table(common),
            ("docs/settings.md", "settings"): readme_table()}


def filled(text: str, marker: str, content: str) -> str:
    block = re.compile(rf"(<!-- {marker} -->\n).*?(<!-- /{marker} -->)", re.DOTALL)
    if not block.search(text):
        raise ValueError(f"no <!-- {marker} --> block")
    return block.sub(lambda match: match.group(1) + content + match.group(2), text)


if __name__ == "__main__":
    for (name, marker), content in generated().items():
        path = Path(__file__).resolve().parent.parent / name
        path.write_text(filled(path.read_text(), marker, content))
