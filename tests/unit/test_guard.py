"""The guard the server image includes into pypicloud (docker/server/ppc_guard/): its
modules that need no pyramid."""

import contextlib
import datetime
import sys

import pytest

from ppc_tasks.render import DOCKER_DIR

sys.path.insert(0, str(DOCKER_DIR / "server"))
from ppc_guard import answers, hooks, logins, names, projects, views  # noqa: E402  (the image's, not ours)

sys.path.remove(str(DOCKER_DIR / "server"))
guard = names


@pytest.mark.parametrize("filename, name, version", [
    ("ppc_sample-0.1.0.tar.gz", "ppc-sample", "0.1.0"),
    ("ppc_sample-0.1.0-py3-none-any.whl", "ppc_sample", "0.1.0"),
    ("Django-4.2.1.zip", "Django", "4.2.1"),
    ("pkg-1.0rc1.post2.dev3+local.7-py3-none-any.whl", "pkg", "1.0rc1.post2.dev3+local.7"),
    ("pkg-2!1.0.tar.gz", "pkg", "2!1.0"),
    ("pkg-1.0.tar.gz", None, None),  # the API upload: both parsed from the file name
])
def test_distributions_pass(filename, name, version):
    assert guard.upload_error(filename, name, version) is None


@pytest.mark.parametrize("filename, name, version, what", [
    ("db.sqlite", "ppc-sample", "0.1.0", "distribution file name"),
    ("../db.sqlite", "ppc-sample", "0.1.0", "distribution file name"),
    ("pkg-1.0.tar.gz", "ppc-sample", "../..", "version"),
    ("pkg-1.0.tar.gz", "ppc-sample", "1.0/../../x", "version"),
    ("pkg-1.0.tar.gz", "../../etc", "1.0", "project name"),
    ("pkg-1.0.tar.gz", "a\\b", "1.0", "project name"),
    ("pkg-1.0.tar.gz", "a\0b", "1.0", "project name"),
    ("pkg..-1.0.tar.gz", "pkg", "1.0", "distribution file name"),
    (".hidden-1.0.tar.gz", "pkg", "1.0", "distribution file name"),
    ("pkg-1.0.tar.gz/", "pkg", "1.0", "distribution file name"),
    (None, "pkg", "1.0", "distribution file name"),
])
def test_anything_that_could_leave_the_package_store_is_refused(filename, name, version, what):
    assert guard.upload_error(filename, name, version).startswith(f"invalid {what}: ")


def test_only_health_is_public():
    assert hooks.is_public("/health")
    for path in ("/", "/simple/", "/simple/missing/", "/api/package/", "/pypi", "/health/x"):
        assert not hooks.is_public(path)


@pytest.mark.parametrize("filename, name, version", [
    ("ppc_sample-1.0-1-py3-none-any.whl", "ppc-sample", "1.0"),  # a build tag: still 1.0
    ("ppc_sample-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "PPC.Sample", "1.0"),
    ("ppc_sample-1.0.0.tar.gz", "ppc-sample", "1.0"),  # 1.0.0 is 1.0 to pip
    ("ppc-sample-1.0.tar.bz2", "ppc_sample", "1.0"),
    ("ppc_sample-1.0-py3.11.egg", "ppc-sample", "1.0"),
])
def test_a_file_of_the_project_and_version_passes(filename, name, version):
    assert names.upload_error(filename, name, version) is None


@pytest.mark.parametrize("filename, name, version, of", [
    ("other-1.0-py3-none-any.whl", "ppc-sample", "1.0", "ppc-sample"),  # another's file name
    ("ppc_sample-1.0-py3-none-any.whl", "ppc-sample-1", "0", "ppc-sample-1"),
    ("ppc_sample-1.0.tar.gz", "ppc", "1.0", "ppc"),
    ("ppc_sample-2.0-py3-none-any.whl", "ppc-sample", "1.0", "ppc-sample 1.0"),
])
def test_a_file_of_another_project_or_version_is_refused(filename, name, version, of):
    assert names.upload_error(filename, name, version) == f"the file {filename} is no distribution of {of}"


def test_patterns_match_names_as_pip_compares_them():
    assert names.matches("Acme_Tools", ("acme-*",))
    assert names.matches("acme.tools", ("ACME_*",))
    assert not names.matches("acmetools", ("acme-*",))
    assert not names.matches("tools", ())


# -- owners and closed releases -----------------------------------------------------------
NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.timezone.utc)
RULES = projects.Rules(owners=(("acme-*", ("ci",)),), release_window=datetime.timedelta(hours=2),
                       private_names=())


def file(version, minutes_ago, uploader="alice"):
    return projects.StoredFile(version, NOW - datetime.timedelta(minutes=minutes_ago), uploader)


def refusal(user, name, version, recorded, files):
    return projects.upload_refusal(user, name, version, recorded, files, RULES, NOW)


def test_a_new_project_is_anyones_and_its_owners_only_after():
    assert refusal("bob", "tool", "1.0", None, []) is None
    assert refusal("alice", "tool", "2.0", "alice", [file("1.0", 500)]) is None
    refused = refusal("bob", "tool", "2.0", "alice", [file("1.0", 500)])
    assert refused == ("tool belongs to alice and the admins: bob may not upload to it "
                       "(an admin can grant it with ppc.owners)")


def test_a_deleted_project_keeps_its_owner():
    assert refusal("bob", "tool", "1.0", "alice", []).startswith("tool belongs to alice")


def test_settings_grant_more_owners_by_pattern():
    assert refusal("ci", "Acme_Lib", "2.0", "alice", [file("1.0", 500)]) is None
    assert refusal("ci", "other", "2.0", "alice", [file("1.0", 500)]) is not None


def test_an_owners_pattern_reserves_its_names_for_its_accounts():
    for spelled in ("acme-new", "ACME_New", "acme.new"):
        assert refusal("bob", spelled, "1.0", None, []) == (
            "acme-new is reserved for ci and the admins by ppc.owners: bob may not create it")
    assert refusal("ci", "acme-new", "1.0", None, []) is None
    # A project someone created before the pattern keeps its owner, beside the pattern's.
    assert refusal("alice", "acme-old", "2.0", "alice", [file("1.0", 500)]) is None


def test_a_project_nobody_owns_is_the_admins():
    refused = refusal("alice", "cached", "2.0", projects.NOBODY, [file("1.0", 5, uploader="")])
    assert refused.startswith("cached belongs to the admins: alice may not")
    assert refusal("ci", "acme-cached", "2.0", None, [file("1.0", 5, uploader="")]) is None


def test_a_release_takes_files_within_its_window_then_is_closed():
    assert refusal("alice", "tool", "1.0", "alice", [file("1.0", 119)]) is None
    refused = refusal("alice", "tool", "1.0", "alice", [file("1.0", 121), file("1.0", 1)])
    assert refused == ("tool 1.0 was published at 2026-11-29 09:59:00 UTC and is closed: files "
                       "are added to a release only within 2 hours of its first one (publish a "
                       "new version, or ask an admin)")
    # The same release written otherwise (1.0.0 is 1.0 to pip) is closed too.
    assert refusal("alice", "tool", "1.0.0", "alice", [file("1.0", 121)]) is not None
    assert refusal("alice", "tool", "1.1", "alice", [file("1.0", 121)]) is None


@pytest.mark.parametrize("version", ["1.0+evil", "1.0.0", "1.0.0+evil", "v1.0", "0!1.0",
                                     "0!1.0+Evil.1", "1.0+1"])
def test_every_spelling_of_a_closed_release_is_that_release(version):
    """pip's NAME==1.0 matches 1.0+local and prefers it: a local version is the release."""
    refused = refusal("alice", "tool", version, "alice", [file("1.0", 121)])
    assert refused.startswith(f"tool {version} was published at "), refused


@pytest.mark.parametrize("version", ["1.0.post1", "1.0.1", "1.0a1", "1!1.0"])
def test_other_releases_are_new_ones(version):
    assert refusal("alice", "tool", version, "alice", [file("1.0", 121)]) is None


@pytest.mark.parametrize("path", [
    "/simple/", "/simple/six/", "/simple/Six", "/pypi/SIX/", "/api/package/",
    "/api/package/six/", "/api/package/Six/six-1.17.0-py2.py3-none-any.whl",
    "/api/package/typing.extensions/typing_extensions-4.12.2-py3-none-any.whl.metadata",
    "/health", "/admin/yank/six/1.0",
])
def test_a_path_that_names_a_project_and_its_file_passes(path):
    assert names.path_refusal(path) is None


@pytest.mark.parametrize("path, refusal", [
    # Still percent-encoded once the server decoded it (a client sent %2573ix): no name.
    ("/api/package/%73ix/six-1.17.0-py2.py3-none-any.whl", (400, "invalid project name: '%73ix'")),
    ("/simple/%73ix/", (400, "invalid project name: '%73ix'")),
    ("/pypi/six%2F/", (400, "invalid project name: 'six%2F'")),
    ("/simple/-six/", (400, "invalid project name: '-six'")),
    # A file of another project, asked under a name the client may read.
    ("/api/package/public/six-1.17.0-py2.py3-none-any.whl",
     (404, "six-1.17.0-py2.py3-none-any.whl is no file of public")),
    ("/api/package/six/six-1.17.0.tar.gz/x", (404, "six-1.17.0.tar.gz/x is no file of six")),
    ("/api/package/six/notes.txt", (404, "notes.txt is no file of six")),
])
def test_a_path_that_names_no_project_or_another_projects_file_is_refused(path, refusal):
    assert names.path_refusal(path) == refusal


def test_the_first_uploader_owns_a_project_from_before_owners_were_recorded():
    assert projects.first_uploader([file("1.0", 5, "bob"), file("0.9", 50, "alice")]) == "alice"
    assert projects.first_uploader([file("1.0", 5, "")]) == projects.NOBODY
    assert projects.first_uploader([]) == projects.NOBODY


def test_rules_come_from_config_ini_lines():
    rules = projects.parse_rules({"ppc_guard.owners": "\nacme-* = ci release\ntools-? = bob",
                                  "ppc_guard.release_window": "90",
                                  "ppc_guard.private_names": "acme-* tools-?"})
    assert rules.owners == (("acme-*", ("ci", "release")), ("tools-?", ("bob",)))
    assert rules.release_window == datetime.timedelta(seconds=90)
    assert rules.private_names == ("acme-*", "tools-?")
    assert rules.granted("ACME_x") == {"ci", "release"}


# -- logins -------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def counting(result, calls):
    return lambda: calls.append(result) or result


def test_a_login_right_or_wrong_costs_one_slow_hash_once():
    checker, calls = logins.Logins(), []
    for _ in range(3):
        assert checker.verify("dev", "right", "$6$hash", "10.0.0.1", counting(True, calls))
        assert not checker.verify("dev", "wrong", "$6$hash", "10.0.0.1", counting(False, calls))
    assert calls == [True, False]
    # A changed stored hash (a new password in config.ini) is verified afresh.
    assert checker.verify("dev", "right", "$6$other", "10.0.0.1", counting(True, calls))
    assert calls == [True, False, True]
    assert b"right" not in repr(checker.memory._outcomes).encode()


def test_an_address_that_keeps_guessing_is_throttled_but_a_right_password_gets_in():
    clock = Clock()
    checker, calls = logins.Logins(throttle=logins.AddressThrottle(limit=3, window=60, clock=clock)), []
    assert checker.verify("dev", "right", "$6$hash", "10.0.0.9", counting(True, calls))
    for guess in range(3):
        assert not checker.verify("dev", f"guess{guess}", "$6$hash", "10.0.0.9", counting(False, calls))
    with pytest.raises(logins.TooManyFailures) as refused:
        checker.verify("dev", "guess9", "$6$hash", "10.0.0.9", counting(False, calls))
    assert refused.value.retry_after == 61
    assert len(calls) == 5  # a throttled guess still costs its one hash (in its own lane)
    assert checker.verify("dev", "right", "$6$hash", "10.0.0.9", counting(True, calls))  # known
    # A right password the process has not seen (after a restart: the memory is empty)
    # gets in from a throttled address, after one slow hash.
    assert checker.verify("ci", "right", "$6$ci", "10.0.0.9", counting(True, calls))
    assert len(calls) == 6
    for _ in range(20):  # a wrong login every few seconds keeps it throttled...
        clock.now += 5
        with contextlib.suppress(logins.TooManyFailures):
            checker.verify("dev", f"slow{clock.now}", "$6$hash", "10.0.0.9", counting(False, calls))
    assert checker.throttle.retry_after("10.0.0.9")
    assert checker.verify("ops", "new", "$6$ops", "10.0.0.9", counting(True, calls))  # ...not out
    assert checker.verify("ops", "other", "$6$o2", "10.0.0.8", counting(True, calls))  # another address
    clock.now += 61
    assert not checker.verify("dev", "guess10", "$6$hash", "10.0.0.9", counting(False, calls))


def test_throttled_addresses_hash_one_at_a_time_never_in_others_slots():
    import threading

    clock = Clock()
    checker = logins.Logins(throttle=logins.AddressThrottle(limit=1, window=60, clock=clock))
    assert not checker.verify("dev", "guess", "$6$hash", "10.0.0.9", lambda: False)
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(5)
        return False

    guessing = threading.Thread(target=lambda: pytest.raises(
        logins.TooManyFailures, checker.verify, "dev", "guess2", "$6$hash", "10.0.0.9", slow))
    guessing.start()
    started.wait(5)
    with pytest.raises(logins.TooBusy):  # the throttled lane is taken: 503, pip retries
        checker.verify("ci", "right", "$6$ci", "10.0.0.9", lambda: True)
    assert checker.verify("ops", "pw", "$6$ops", "10.0.0.2", lambda: True)  # others' slots free
    release.set()
    guessing.join(5)
    assert checker.verify("ci", "right", "$6$ci", "10.0.0.9", lambda: True)


def test_slow_hashes_never_take_every_thread():
    import threading

    checker = logins.Logins(slow_hashes=1)
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(5)
        return True

    first = threading.Thread(target=checker.verify, args=("a", "pw", "$6$a", "10.0.0.1", slow))
    first.start()
    started.wait(5)
    with pytest.raises(logins.TooBusy):
        checker.verify("b", "pw", "$6$b", "10.0.0.2", lambda: True)
    # The very same login waits for the hash already running for it.
    same = []
    waiter = threading.Thread(target=lambda: same.append(
        checker.verify("a", "pw", "$6$a", "10.0.0.3", lambda: pytest.fail("hashed twice"))))
    waiter.start()
    release.set()
    first.join(5)
    waiter.join(5)
    assert same == [True]
    assert checker.verify("b", "pw", "$6$b", "10.0.0.2", lambda: True)


# -- answers kept (answers.py) ------------------------------------------------------------
PAGE = (("Content-Type", "text/html"),)


def test_an_answer_is_given_again_only_under_the_token_it_was_made_under():
    kept = answers.Answers()
    assert kept.get("page", "t1") is None
    kept.keep("page", "t1", PAGE, b"<a>1.0</a>")
    kept.keep("other page", None, PAGE, b"<a>2.0</a>")  # a project that never changed
    assert kept.get("page", "t1").body == b"<a>1.0</a>"
    assert kept.get("other page", None).body == b"<a>2.0</a>"
    # An upload set a new token: what was made before it is not given, and gone.
    assert kept.get("page", "t2") is None
    assert kept.get("page", "t1") is None
    assert kept.get("other page", "t3") is None


def test_an_answer_made_under_an_older_token_goes_only_to_requests_that_read_it():
    kept = answers.Answers()
    kept.keep("page", "new", PAGE, b"made after the change")
    kept.keep("page", "old", PAGE, b"made by a request that read the token before it")
    assert kept.get("page", "new") is None


def test_an_answer_is_given_for_max_age_seconds_at_most():
    clock = Clock()
    kept = answers.Answers(max_age=60, clock=clock)
    kept.get("page", "t")
    kept.keep("page", "t", PAGE, b"body")
    clock.now += 60
    assert kept.get("page", "t") is not None
    clock.now += 0.5
    assert kept.get("page", "t") is None


def test_the_least_recently_used_answers_go_first_past_max_bytes():
    kept = answers.Answers(max_bytes=10)
    for key in "abc":
        kept.keep(key, "t", PAGE, b"1234")
    assert kept.get("a", "t") is None  # 12 bytes > 10: the oldest went
    assert kept.get("b", "t") is not None
    kept.keep("d", "t", PAGE, b"1234")  # b was used since: c goes
    assert [key for key in "bcd" if kept.get(key, "t")] == ["b", "d"]
    kept.keep("big", "t", PAGE, b"x" * 11)  # more than all: never kept
    assert kept.get("big", "t") is None and kept.get("d", "t") is not None


@pytest.mark.parametrize("path, kept_as", [
    ("/simple/", ("", "/simple/")), ("/pypi/", ("", "/pypi/")),
    ("/simple/Acme_Tools/", ("acme-tools", "/simple/acme-tools/")),
    ("/pypi/acme.tools/", ("acme-tools", "/pypi/acme-tools/")),
    ("/api/package/Acme.Tools/acme_tools-1.0-py3-none-any.whl.metadata",
     ("acme-tools", "/api/package/acme-tools/acme_tools-1.0-py3-none-any.whl.metadata")),
    ("/api/package/acme-tools/acme_tools-1.0-py3-none-any.whl", None),
    ("/simple/acme-tools", None), ("/simple//", None), ("/pypi/acme-tools/json", None),
    ("/api/package/acme-tools/x/y.metadata", None), ("/health", None), ("/admin/", None),
])
def test_pages_and_metadata_files_are_kept_under_their_projects_token_and_name(path, kept_as):
    """Every spelling of a project's name is kept as one answer: an account asking for
    many spellings cannot push the answers of others out."""
    assert views.kept_as(path) == kept_as


def test_an_account_adds_no_file_past_its_quota():
    mib = 1024 ** 2
    assert projects.quota_refusal("ci", 10 * mib, 5 * mib, 20 * mib) is None
    assert projects.quota_refusal("ci", 15 * mib, 5 * mib, 20 * mib) is None  # up to it
    assert projects.quota_refusal("ci", 15 * mib, 5 * mib + 1, 20 * mib) == (
        "the projects of ci hold 15.0 MiB of its 20.0 MiB (ppc.account_quota): this file of "
        "5.0 MiB would pass it (delete old files, or ask an admin)")
    assert projects.quota_refusal("ci", 10 ** 12, 1, 0) is None  # 0: no cap
    rules = projects.parse_rules({"ppc_guard.account_quota": "1048576"})
    assert rules.account_quota == mib
    assert projects.parse_rules({}).account_quota == 0  # a config.ini from before: none
