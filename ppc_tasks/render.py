"""Files that land on a host: Jinja2 templates from templates/, static files from files/."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import jinja2

PACKAGE_DIR = Path(__file__).resolve().parent
# In a clone, templates/, files/ and docker/ are at the top of the repo; an installed
# wheel carries them inside the package (pyproject.toml maps them there).
BUNDLED = PACKAGE_DIR / "bundled"
ROOT = BUNDLED if (BUNDLED / "templates").is_dir() else PACKAGE_DIR.parent
TEMPLATES_DIR = ROOT / "templates"
FILES_DIR = ROOT / "files"
DOCKER_DIR = ROOT / "docker"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def render(template: str, **values) -> bytes:
    """Render templates/<template>; a missing value is an error, never an empty string."""
    return _environment.get_template(template).render(**values).encode()


def script(name: str) -> str:
    """The text of files/sh/<name>.sh: shell logic that takes every value as an argument."""
    return (FILES_DIR / "sh" / f"{name}.sh").read_text()


@functools.cache
def _script_names() -> dict[str, str]:
    return {path.read_text(): path.stem for path in (FILES_DIR / "sh").glob("*.sh")}


def script_name(text: str) -> str | None:
    """NAME if text is files/sh/NAME.sh (an argument that is a script is shown by name)."""
    return _script_names().get(text)


def script_argv(name: str, *args: str) -> list[str]:
    """Run files/sh/<name>.sh with its arguments; the script's $0 is its name."""
    return ["sh", "-c", script(name), name, *args]


def guard_module(name: str) -> ModuleType:
    """A module of the server image's guard (docker/server/ppc_guard/<name>.py): the rules
    an index and this machine must agree on (what an archive may hold) have one home."""
    if "ppc_guard" not in sys.modules:
        package = DOCKER_DIR / "server" / "ppc_guard"
        spec = importlib.util.spec_from_file_location(
            "ppc_guard", package / "__init__.py", submodule_search_locations=[str(package)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["ppc_guard"] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"ppc_guard.{name}")
