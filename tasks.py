"""The root task namespace, as `fab` in a clone finds it (through fabfile.py) and
`invoke` reads it; assembled in ppc_tasks/cli.py, which the `ppc` command bundles."""

from ppc_tasks.cli import namespace as ns  # noqa: F401
