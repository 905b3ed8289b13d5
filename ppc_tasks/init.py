"""`init`: a commented fabric.yaml with the choices a first deploy needs, trusted.

The names are asked for here, before any host is touched, because they are permanent
(see index.py); the other choices have safe defaults that the file explains.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fabric import task

from . import project, state
from .errors import TaskError, program
from .render import render
from .settings import DEFAULTS, Settings, SettingsError
from .values import string_list
from .wiring import expected_failures

PROJECT_FILE = project.PROJECT_FILES[0]


def names_from_terminal() -> str:
    """Ask for the names on a terminal; elsewhere a missing --names is an error."""
    if not sys.stdin.isatty():
        raise SettingsError("ppc init: give the index's names with --names "
                            "(DNS names clients use, comma-separated: they are permanent)")
    print("The names clients use for the index (DNS names or IP addresses, comma-separated).\n"
          "They are permanent: the index's CA signs for these names only.")
    return input("Names: ")


def settings_file(names: str, private: str, fallback: str, admins: str, users: str) -> bytes:
    """The file's text, once its values are valid settings together."""
    chosen = {"server_names": names, "private_names": private, "fallback": fallback,
              "admins": admins, "users": users}
    Settings.from_config(chosen, environ={})  # one line naming the key, nothing written
    lists = {key: string_list(chosen, key) for key in chosen if key != "fallback"}
    return render("fabric.yaml.j2", fallback=fallback.strip(), **lists)


def already_there(path: Path) -> TaskError:
    return TaskError(f"{path} exists: edit it (then ppc trust), or move it away and run "
                     f"init again")


@task(auto_shortflags=False, help={
    "names": "the index's DNS names (or IP addresses), comma-separated; the first names it",
    "private": "project name patterns never looked up on PyPI, comma-separated: 'acme-*'",
    "fallback": "for names the index never held: none, redirect, cache or mirror",
    "admins": "admin accounts, comma-separated",
    "users": "other accounts, comma-separated (developer machines get the first)"})
def init(c, names="", private="", fallback=DEFAULTS["fallback"], admins=DEFAULTS["admins"],
         users=DEFAULTS["users"]):
    """Write this directory's fabric.yaml for a new index, with a comment on each choice.

    Example: ppc init --names pypi.example.com --private 'acme-*'

    The names clients use are asked for when not given (they are permanent); private
    names, the fallback to PyPI and the accounts have safe defaults the file explains.
    The file is trusted as written (ppc trust); an existing one is never replaced.
    Next: ppc config, then ppc --dry -H HOST deploy.
    """
    path = Path.cwd() / PROJECT_FILE
    with expected_failures():
        existing = project.project_file(Path.cwd())
        if existing is not None:
            raise already_there(existing)
        content = settings_file(names or names_from_terminal(), private, fallback, admins, users)
        try:  # no secret in it: readable as any project file, in the operator's folder
            state.write(path, content, 0o644, private_folder=False, replace=False)
        except FileExistsError:  # made meanwhile
            raise already_there(path) from None
        project.record(path, content)
    print(f"wrote {path}, trusted as written; next: {program()} config, then "
          f"{program()} --dry -H HOST deploy")
