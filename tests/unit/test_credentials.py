import base64
import stat

import pytest
from passlib.hash import sha512_crypt

from ppc_tasks import apply, credentials
from ppc_tasks.credentials import Credentials, CredentialsError
from ppc_tasks.plan import Change
from ppc_tasks.settings import Settings


def test_first_use_generates_password_hash_and_session_keys():
    creds = Credentials()
    assert credentials.complete(creds, ("admin",)) == ["admin"]
    assert len(creds.passwords["admin"]) >= 24
    assert sha512_crypt.verify(creds.passwords["admin"], creds.password_hashes["admin"])
    for key in (creds.session_encrypt_key, creds.session_validate_key):
        assert len(base64.b64decode(key)) == 32
    assert creds.session_encrypt_key != creds.session_validate_key


def test_complete_keeps_what_exists():
    creds = Credentials()
    credentials.complete(creds, ("admin",))
    before = (dict(creds.passwords), dict(creds.password_hashes), creds.session_encrypt_key)
    assert credentials.complete(creds, ("admin",)) == []
    assert (creds.passwords, creds.password_hashes, creds.session_encrypt_key) == before


def test_an_edited_password_gets_a_new_hash():
    creds = Credentials()
    credentials.complete(creds, ("admin",))
    creds.passwords["admin"] = "chosen by the operator"
    assert credentials.complete(creds, ("admin",)) == []
    assert sha512_crypt.verify("chosen by the operator", creds.password_hashes["admin"])


def test_a_warm_run_verifies_no_hash(monkeypatch):
    """Each sha512_crypt verify costs a third of a second: a deploy must not pay it per account."""
    creds = Credentials()
    credentials.complete(creds, ("admin", "dev"))
    monkeypatch.setattr(credentials.sha512_crypt, "verify", lambda *args: pytest.fail("verified"))
    assert credentials.complete(creds, ("admin", "dev")) == []


def test_a_file_from_before_hashed_from_is_checked_once():
    creds = Credentials()
    credentials.complete(creds, ("admin",))
    before = creds.password_hashes["admin"]
    creds.hashed_from.clear()
    credentials.complete(creds, ("admin",))
    assert creds.password_hashes["admin"] == before  # the same hash: config.ini stays as it is
    assert creds.hashed_from["admin"]


@pytest.mark.real_password_hash
def test_hash_is_what_ppc_gen_password_makes():
    assert credentials.hash_password("pw").startswith("$6$")
    assert sha512_crypt.verify("pw", credentials.hash_password("pw"))
    # passlib's own rounds, as ppc-gen-password makes them: the tests' quick hashes are theirs.
    assert sha512_crypt.from_string(credentials.hash_password("pw")).rounds         == sha512_crypt.default_rounds == 656_000


def test_saved_file_is_private_and_round_trips(tmp_path):
    path = tmp_path / "state" / "pypi.test" / "secrets.json"
    creds = Credentials()
    credentials.complete(creds, ("admin",))
    credentials.save(path, creds)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credentials.load(path) == creds


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON (line 1: "),
    ('{"passwords": {"admin": 42}}', "passwords['admin'] must be a string, got 42"),
    ('{"passwords": ["admin"]}', "'passwords' must be an object of user: string"),
    ('{"session_encrypt_key": null}', "'session_encrypt_key' must be a string"),
    ("[]", "must hold a JSON object"),
])
def test_a_damaged_secrets_file_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "secrets.json"
    path.write_text(content)
    with pytest.raises(credentials.CredentialsError) as error:
        credentials.load(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def s3_settings(tmp_path, **ppc):
    return Settings.from_config({"server_names": "pypi.test", "state_dir": str(tmp_path),
                                 "storage": "s3", "s3_bucket": "pypi",
                                 "s3_access_key_id": "test:tester", **ppc})


def test_a_service_secret_comes_from_the_environment_once_and_is_kept(tmp_path):
    settings = s3_settings(tmp_path, cache_url="postgresql://pypi@db.test/pypi")
    with pytest.raises(CredentialsError, match=r"^ppc.storage = s3 needs the S3 secret access "
                                               r"key: set PPC_S3_SECRET_ACCESS_KEY"):
        credentials.prepare(settings, environ={})
    creds, step = credentials.prepare(settings, environ={"PPC_S3_SECRET_ACCESS_KEY": "s3/key+1",
                                                         "PPC_CACHE_PASSWORD": "p%w"})
    assert (creds.s3_secret_access_key, creds.cache_password) == ("s3/key+1", "p%w")
    assert "PPC_S3_SECRET_ACCESS_KEY and PPC_CACHE_PASSWORD" in step.done
    assert "s3/key" not in step.done + step.would and "p%w" not in step.done + step.would
    apply.do_here(step.local)
    # Kept: the next run needs no variable, and one that gives the same changes nothing.
    kept, unchanged = credentials.prepare(settings, environ={})
    assert kept.s3_secret_access_key == "s3/key+1" and not isinstance(unchanged, Change)
    _, same = credentials.prepare(settings, environ={"PPC_S3_SECRET_ACCESS_KEY": "s3/key+1"})
    assert not isinstance(same, Change)
    # A rotated key replaces the kept one; a new identity keeps the services' secrets.
    rotated, step = credentials.prepare(settings, environ={"PPC_S3_SECRET_ACCESS_KEY": "new"})
    assert rotated.s3_secret_access_key == "new" and step.done.endswith(
        "kept what PPC_S3_SECRET_ACCESS_KEY gave (mode 0600; the output never shows them)")
    fresh, _ = credentials.prepare(settings, fresh=True, environ={})
    assert fresh.s3_secret_access_key == "s3/key+1" and fresh.cache_password == "p%w"
    assert fresh.passwords["admin"] != kept.passwords["admin"]


def test_a_service_secret_is_one_line(tmp_path):
    with pytest.raises(CredentialsError, match=r"^PPC_CACHE_PASSWORD: must be one line"):
        credentials.prepare(s3_settings(tmp_path), environ={"PPC_S3_SECRET_ACCESS_KEY": "k",
                                                            "PPC_CACHE_PASSWORD": "a\nb"})
