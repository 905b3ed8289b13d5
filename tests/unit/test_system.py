from ppc_tasks.system import FAMILIES, nginx_service, parse_platform


def test_families_are_detected_from_os_release():
    assert parse_platform("os=debian \nsystemd=1\n").family is FAMILIES["debian"]
    assert parse_platform("os=ubuntu debian\nsystemd=1\n").family is FAMILIES["debian"]
    assert parse_platform("os=rocky rhel centos fedora\nsystemd=1\n").family is FAMILIES["rhel"]
    unknown = parse_platform("os=plan9 \nsystemd=0\n")
    assert unknown.family is None and unknown.trust_store is None and unknown.os == "plan9"


def test_nginx_is_driven_by_systemd_where_it_runs():
    assert nginx_service(parse_platform("os=debian\nsystemd=1")).reload == ("systemctl", "reload", "nginx")
    without = nginx_service(parse_platform("os=debian\nsystemd=0"))
    assert without.reload == ("nginx", "-s", "reload")
    # A package may start nginx as it installs it: "start" loads the site either way.
    assert nginx_service(parse_platform("os=debian\nsystemd=1")).start == (
        "systemctl", "reload-or-restart", "nginx")
    assert without.start == ("sh", "-c", "nginx -s reload 2>/dev/null || nginx")
