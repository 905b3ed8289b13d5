"""`config`: the settings a run from here would use, and where each one comes from.

Fabric merges its configuration from layers, each over the one before: the defaults,
/etc/fabric.yaml, ~/.fabric.yaml, the trusted fabric.yaml of the directory (trust.py),
FABRIC_PPC_* variables, `-f FILE`. The layer that set a key last is its source.
"""

from __future__ import annotations

import os

from fabric import task

from . import state
from .settings import DEFAULTS, ENV_PREFIX, Settings
from .wiring import expected_failures

# Invoke's layers in the order it merges them: (attribute, the attribute of its file).
LAYERS = (("_system", "_system_path"), ("_user", "_user_path"),
          ("_project", "_project_path"), ("_env", None), ("_runtime", "_runtime_path"),
          ("_overrides", None))


def sources(config, environ: dict) -> dict[str, str]:
    """Where each ppc setting's value comes from: "default", a file, a variable, a flag."""
    found = dict.fromkeys(DEFAULTS, "default")
    for layer, path_attribute in LAYERS:
        for key in (getattr(config, layer, None) or {}).get("ppc") or {}:
            if layer == "_env":
                found[key] = f"${ENV_PREFIX}{key.upper()}"
            elif path_attribute:
                found[key] = state.shown(getattr(config, path_attribute, None) or "a file")
            else:
                found[key] = "a flag"
    # Invoke merges no string into a mapping: FABRIC_PPC_OWNERS is read by Settings.
    if not (config.get("ppc") or {}).get("owners") and environ.get(ENV_PREFIX + "OWNERS"):
        found["owners"] = f"${ENV_PREFIX}OWNERS"
    return found


def shown(value) -> str:
    if hasattr(value, "items"):
        return "; ".join(f"{key}: {shown(item)}" for key, item in value.items()) or "{}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "(none)"
    return str(value) if value != "" else "(none)"


def rows(config, environ: dict) -> list[tuple[str, str, str]]:
    """(key, value, source) for every setting, in the table's order."""
    values = dict((config.get("ppc") or {}).items())
    where = sources(config, environ)
    if where["owners"].startswith("$"):
        values["owners"] = environ[ENV_PREFIX + "OWNERS"]
    return [(key, shown(values.get(key, DEFAULTS[key])), where[key]) for key in DEFAULTS]


@task(auto_shortflags=False)
def config(c):
    """Show the settings a run from here would use, and where each one comes from.

    Example: ppc config

    One line per setting: its value and its source (default, /etc/fabric.yaml,
    ~/.fabric.yaml, the trusted fabric.yaml of this directory, a FABRIC_PPC_* variable,
    -f FILE), then whether they are valid together. Reads no host; exits 2 when they
    are not valid. server_names may stay empty here: deploy takes the -H host's then.
    """
    listed = rows(c.config, dict(os.environ))
    width = max(len(key) for key, _, _ in listed)
    for key, value, source in listed:
        print(f"{key:<{width}}  {value}  ({source})")
    with expected_failures():
        Settings.from_config(dict(c.config.ppc), environ=dict(os.environ), require_names=False)
    print("valid together")
