"""Docker commands as plain strings, and the few reads the tasks need."""

from __future__ import annotations

import shlex

# Labels ppc-tasks puts on what it creates, to tell later whether it is up to date.
CONTEXT_LABEL = "ppc-tasks.context-hash"
SPEC_LABEL = "ppc-tasks.spec-hash"


def inspect_command(kind: str, name: str, template: str) -> str:
    """`docker image|container inspect` printing one Go-template value."""
    return f"docker {kind} inspect --format {shlex.quote(template)} {shlex.quote(name)}"


def label_template(label: str) -> str:
    return f'{{{{index .Config.Labels "{label}"}}}}'


def inspect(host, kind: str, name: str, template: str) -> str | None:
    """The value, or None when there is no such image/container."""
    result = host.sudo(inspect_command(kind, name, template), check=False)
    return result.stdout.strip() if result.ok else None
