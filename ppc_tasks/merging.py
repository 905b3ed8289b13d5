"""How a developer's own files take ours: ~/.pypirc and pip.conf (INI), uv's, Poetry's
and PDM's TOML, and ~/.netrc. Our entries replace theirs of the same name; everything
else of the user's (other repositories and indexes, keys, comments) stays as it was.
Pure functions of two texts, unit-tested on their own.
"""

from __future__ import annotations

import configparser
import io
import re
import urllib.parse
from collections.abc import Mapping

import tomlkit

REPOSITORY = "internal"  # twine upload -r internal, poetry/pdm publish -r internal


def _parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep keys as written
    parser.read_string(text)
    return parser


def _write(parser: configparser.ConfigParser) -> str:
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def merge_pypirc(existing: str, ours: str) -> str:
    """Add (or replace) our repository; every other repository stays as it was."""
    parser, our = _parse(existing), _parse(ours)
    servers = parser.get("distutils", "index-servers", fallback=None)
    servers = servers.split() if servers is not None else [
        section for section in parser.sections() if section != "distutils"]
    if REPOSITORY not in servers:
        servers.append(REPOSITORY)
    if not parser.has_section("distutils"):
        parser.add_section("distutils")
    parser.set("distutils", "index-servers", "\n" + "\n".join(servers))
    parser.remove_section(REPOSITORY)
    parser.add_section(REPOSITORY)
    for key, value in our.items(REPOSITORY):
        parser.set(REPOSITORY, key, value)
    return _write(parser)


def merge_pip_conf(existing: str, ours: str, stale_cert: str | None = None) -> str:
    """Set our keys in [global]; an extra-index-url keeps the other indexes it lists; a
    `cert` naming stale_cert (one configure wrote, no longer needed) goes."""
    parser, our = _parse(existing), _parse(ours)
    if not parser.has_section("global"):
        parser.add_section("global")
    if stale_cert and parser.get("global", "cert", fallback=None) == stale_cert:
        parser.remove_option("global", "cert")
    for key, value in our.items("global"):
        if key == "extra-index-url":
            ours_host = urllib.parse.urlsplit(value).hostname
            others = [url for url in parser.get("global", key, fallback="").split()
                      if urllib.parse.urlsplit(url).hostname != ours_host]
            value = "\n".join(others + [value])
        parser.set("global", key, value)
    return _write(parser)


def _set_keys(target, ours) -> None:
    """Our keys into target, tables key by key; a value already right is left alone (so
    its formatting stays)."""
    for key, value in ours.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), Mapping):
            _set_keys(target[key], value)
        elif key not in target or target[key] != value:
            target[key] = value


def merge_toml(existing: str, ours: str) -> str:
    """Our keys set in the user's TOML file; every other key and comment stays."""
    if not existing.strip():
        return ours
    document = tomlkit.parse(existing)
    _set_keys(document, tomlkit.parse(ours))
    return tomlkit.dumps(document)


def merge_uv_toml(existing: str, ours: str) -> str:
    """Our settings, and our index first among the user's (uv asks them in order),
    replacing one of the same name. When ours is the default, no other one is."""
    if not existing.strip():
        return ours
    document, our = tomlkit.parse(existing), tomlkit.parse(ours)
    our_index = our.pop("index")[0].unwrap()
    indexes = document.get("index", [])
    if not isinstance(indexes, list) or not all(isinstance(entry, Mapping) for entry in indexes):
        raise ValueError("`index` is not a list of tables")
    _set_keys(document, our)
    others = [entry.unwrap() for entry in indexes if entry.get("name") != our_index["name"]]
    if our_index.get("default"):
        others = [{**entry, "default": False} if entry.get("default") else entry
                  for entry in others]
    wanted = [our_index, *others]
    if [entry.unwrap() for entry in indexes] != wanted:
        entries = tomlkit.aot()
        for entry in wanted:
            entries.append(tomlkit.item(entry))
        document["index"] = entries
    return tomlkit.dumps(document)


# One token of a netrc file: a comment to the end of its line, a quoted word, or a word.
NETRC_TOKEN = re.compile(r'#[^\n]*|"(?:\\.|[^"\\])*"|\S+')


def _netrc_entries(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, machine name) of each `machine`, `default` and `macdef` entry."""
    entries: list[list] = []
    position = 0
    while token := NETRC_TOKEN.search(text, position):
        word, position = token.group(), token.end()
        if word.startswith("#"):
            continue
        if word in ("machine", "default", "macdef"):
            name = ""
            if word != "default" and (name_token := NETRC_TOKEN.search(text, position)):
                name, position = name_token.group(), name_token.end()
            if word == "macdef":  # its body runs to the next empty line
                blank = text.find("\n\n", position)
                position = len(text) if blank < 0 else blank + 1
            entries.append([token.start(), position, word, name])
        elif entries:
            entries[-1][1] = position
    return [tuple(entry) for entry in entries]


def merge_netrc(existing: str, ours: str) -> str:
    """Our `machine` entry instead of any other for that host, before a `default` entry
    (which must come last); every other entry and comment stays as written."""
    machine = ours.split()[1]
    text = existing
    for start, end, kind, name in reversed(_netrc_entries(existing)):
        if kind == "machine" and name == machine:
            rest_of_line = re.match(r"[ \t]*\n?", text[end:]).end()
            text = text[:start] + text[end + rest_of_line:]
    if text and not text.endswith("\n"):
        text += "\n"
    default = next((start for start, _, kind, _ in _netrc_entries(text) if kind == "default"),
                   len(text))
    return text[:default] + ours + text[default:]
