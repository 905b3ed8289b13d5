"""Commands as the SSH layer runs and shows them (ppc_tasks/ssh.py)."""

import shlex

from ppc_tasks.render import script, script_argv
from ppc_tasks.ssh import command_line, last_lines, shown


def test_commands_are_quoted_and_go_through_sudo_only_when_needed():
    argv = ["docker", "rm", "--force", "x; touch /tmp/pwned"]
    assert command_line(argv, as_root=False, sudo="nopasswd") == "docker rm --force 'x; touch /tmp/pwned'"
    assert command_line(argv, as_root=True, sudo="root") == shlex.join(argv)
    assert command_line(argv, as_root=True, sudo="nopasswd") == "sudo -n -- " + shlex.join(argv)
    # The password goes on stdin, never on the command line.
    assert command_line(argv, as_root=True, sudo="password") == "sudo -S -k -p '' -- " + shlex.join(argv)
    assert shlex.split(command_line(argv, as_root=True, sudo="nopasswd"))[3:] == argv


def test_scripts_are_shown_by_name_and_long_commands_cut():
    assert shown(script_argv("put-file", "/etc/x", "600")) == "put-file /etc/x 600"
    # A script handed to another as an argument is shown by its name too.
    assert shown(script_argv("put-checked", script("put-file"), "/etc/x", "644", "nginx", "-t"),
                 limit=None) == "put-checked put-file /etc/x 644 nginx -t"
    assert len(shown(["docker", "run", "x" * 200])) == 120
    assert len(shown(["docker", "run", "x" * 200], limit=None)) == 211


def test_failure_lines_leave_out_colours_and_dockers_echo_of_the_run_line():
    output = ("Expected sha256 4721\nGot        1793\n"
              "\x1b[0mThe command '/bin/sh -c set -e; pip install' returned a non-zero code: 1\n")
    assert last_lines(output) == "Expected sha256 4721 | Got        1793"
