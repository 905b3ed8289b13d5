"""Docker commands as argv lists, and the few reads the tasks need."""

from __future__ import annotations

# Labels ppc-tasks puts on what it creates, to tell later whether it is up to date.
CONTEXT_LABEL = "ppc-tasks.context-hash"
SPEC_LABEL = "ppc-tasks.spec-hash"


def inspect_argv(kind: str, name: str, template: str) -> list[str]:
    """`docker image|container|volume inspect` printing one Go-template value."""
    return ["docker", kind, "inspect", "--format", template, name]


def label_template(label: str) -> str:
    return f'{{{{index .Config.Labels "{label}"}}}}'


def inspect(host, kind: str, name: str, template: str) -> str | None:
    """The value, or None when there is no such image/container/volume."""
    result = host.run(inspect_argv(kind, name, template), root=True, check=False)
    return result.stdout.strip() if result.ok else None
