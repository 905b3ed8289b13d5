"""ppc-tasks: Fabric tasks that turn a bare Linux host into a private Python package index.

`from ppc_tasks import namespace` gives the root task collection, for an operator's own
fabfile (see docs/install.md, "Your own fabfile").
"""


def __getattr__(name: str):
    # Lazily: importing any one module (settings, say) must not load every collection.
    if name == "namespace":
        from .cli import namespace

        return namespace
    raise AttributeError(f"module 'ppc_tasks' has no attribute {name!r}")
