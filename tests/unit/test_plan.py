"""Plans as data (ppc_tasks/plan.py): handlers resolved as the executor resolves them, and
what --dry shows of the files it previews."""

import pytest

from ppc_tasks.plan import (
    REDACTED,
    Change,
    Handler,
    Plan,
    Unchanged,
    describe,
    redact_secrets,
)


@pytest.mark.parametrize("text, shown", [
    ("machine h\n  login dev\n  password s3cret\n", "machine h\n  login dev\n  password <r>\n"),
    ('password = "s3cret"\n', "password = <r>\n"),
    # Other services' credentials in the same files: every shape they come in.
    ("machine github.com login a password ghp_abc123\n", "machine github.com login a password <r>\n"),
    ("[pypi-token]\npypi = \"pypi-AgEIcHlwaS5vcmc\"\n", "[pypi-token]\npypi = <r>\n"),
    ("index-url = https://:glpat-xyz@gitlab.example/api/\n", "index-url = https://:<r>@gitlab.example/api/\n"),
    ("url = https://ghp_token@github.com/o/r\n", "url = https://<r>@github.com/o/r\n"),
    ("extra = https://me:pw@mirror.example/simple/\n", "extra = https://me:<r>@mirror.example/simple/\n"),
    ('x = { url = "u", password = "pw", token = "t" }\n', 'x = { url = "u", password = <r>, token = <r> }\n'),
    ("[http-basic.internal]\nusername = \"dev\"\n", "[http-basic.internal]\nusername = \"dev\"\n"),
])
def test_previews_hide_every_credential(text, shown):
    assert redact_secrets(text) == shown.replace("<r>", REDACTED)


def test_a_handler_runs_only_when_an_earlier_change_asks_for_it():
    """Notifications are data: a step declares them, the executor (and --dry) decides."""
    reload = Change("nginx.service", done="reloaded nginx", would="reload nginx")
    handler = Handler("nginx.service", "nginx.reload", reload,
                      Unchanged("nginx.service", "nginx is running with this configuration"))
    assert Plan([Unchanged("nginx.site", "as it is"), handler]).changes() == []
    site = Change("nginx.site", done="written", would="write", notifies=("nginx.reload",))
    assert Plan([site, handler]).changes() == [site, reload]
    rows = describe(Plan([site, handler]), str)
    assert [(step, would) for step, would, _, _ in rows] == [("nginx.site", True),
                                                             ("nginx.service", True)]
