"""How the guard goes into pypicloud: wrappers around its cache (uploads, deletes), its
access backend (logins) and its upstream look-ups, one tween in front of every request
and one that answers the simple API from what answers.py kept."""
import datetime
import json
import logging
import time

from . import metrics, publishing, registry, tokens, upstream, views
from .answers import Answers
from .dates import stamp
from .distributions import NotADistribution, measured, read
from .logins import Logins, TooBusy, TooManyFailures
from .names import (canonical, is_name, matches, named_in, path_refusal, project_of,
                    upload_error)
from .projects import (NOBODY, StoredFile, first_uploader, parse_rules, quota_refusal,
                       upload_refusal)

LOG = logging.getLogger(__name__)
PUBLIC_PATHS = ("/health",)
# Asks /health for the deep check. nginx clears it on every request it forwards: only
# Docker's health check and `fab status`, inside the container, send it.
DEEP_HEALTH_HEADER = "X-PPC-Health"
# A login turned away for guessing (429) reaches its client through nginx at this many
# bytes a second, about 10 s for the whole answer: the guessing client waits instead of
# asking again at once, and it costs the server nothing meanwhile (nginx holds the
# connection; waitress is done with it at once).
TARPIT_BYTES_PER_SECOND = "32"


def install(config):
    settings = config.get_settings()
    rules = parse_rules(settings)
    counted = process_metrics(settings)
    _guard_uploads(rules, counted)
    _remember_deletes()
    _remember_logins(Logins())
    _scope_api_tokens()
    _keep_private_names_home(config, rules, counted)
    _read_tokens_where_the_cache_is()
    views.install(config)
    config.registry.ppc_metrics = counted
    config.add_tween("ppc_guard.hooks.measuring")
    config.add_tween("ppc_guard.hooks.front_door", under="ppc_guard.hooks.measuring")
    # Before a transaction begins: a kept answer needs none.
    config.add_tween("ppc_guard.hooks.kept_answers", under="ppc_guard.hooks.front_door",
                     over="pyramid_tm.tm_tween_factory")


def is_public(path):
    return path in PUBLIC_PATHS


def refused(code, message):
    """An HTTP error whose status line says why: what twine shows of a refused upload.
    (Not an HTTPForbidden: pypicloud turns those into a bare login prompt.)"""
    from pyramid.httpexceptions import HTTPClientError

    error = type("Refused", (HTTPClientError,), {"code": code, "title": "Refused"})(message)
    # A status line is ASCII: anything else a client sent is shown escaped.
    error.status = f"{code} {message.encode('ascii', 'backslashreplace').decode()}"
    return error


def stored(package):
    from pypicloud.dateutil import UTC

    uploaded = package.last_modified
    if uploaded.tzinfo is None:
        uploaded = uploaded.replace(tzinfo=UTC)
    return StoredFile(package.version, uploaded, package.data.get("uploader") or NOBODY)


try:  # the image has pyramid; the ppc-tasks repo imports this module without it
    from pyramid.httpexceptions import HTTPError
except ImportError:  # pragma: no cover
    HTTPError = Exception


# -- uploads and deletes ------------------------------------------------------------------
def publish_refusal(cache, user, name, version, rules):
    """Why `user` may not add this file to `name` (see projects.py), recording the
    project's owner on the way: its first uploader, or `user` for a new project."""
    from pypicloud.dateutil import utcnow

    projects = registry.of(cache)
    files = [stored(package) for package in cache.all(name)]
    recorded = projects.owner(name)
    if recorded is None and first_uploader(files):  # held from before owners were recorded
        recorded = projects.claim(name, first_uploader(files))
    if cache.request.access.is_admin(user):
        if recorded is None:
            projects.claim(name, user)
        return None
    refusal = upload_refusal(user, name, version, recorded, files, rules, utcnow())
    if refusal is None and recorded is None and not files:
        owner = projects.claim(name, user)  # a concurrent first upload may have won
        if owner != user:
            refusal = upload_refusal(user, name, version, owner, files, rules, utcnow())
    return refusal


# An upload refused, by the status that says why: its reason in /metrics.
REFUSAL_REASONS = {400: "invalid", 403: "not_allowed", 413: "over_quota"}


def _guard_uploads(rules, counted):
    from pypicloud.cache.base import ICache

    def guarded_upload(self, filename, data, name=None, version=None, *args, **kwargs):
        try:
            package = checked_upload(self, filename, data, name, version, *args, **kwargs)
        except HTTPError as error:
            counted.uploads.labels(REFUSAL_REASONS.get(error.code, "refused")).inc()
            raise
        counted.uploads.labels("ok").inc()
        return package

    upload = ICache.upload

    def checked_upload(self, filename, data, name=None, version=None, *args, **kwargs):
        error = upload_error(filename, name, version)
        if error:
            raise refused(400, error)
        project, file_version = project_of(filename)
        project = canonical(name or project)
        uploader = kwargs.get("uploader")
        token = api_token(self.request) if uploader == tokens.USER else None
        if token is not None:  # a token's upload is its account's
            uploader = kwargs["uploader"] = token.account
        # An account's upload; pypicloud's own copies of upstream files (fallback =
        # cache) have no uploader, and none is taken for a private or held name,
        # however the request that fetched it spelled the name.
        if uploader is not None:
            refusal = publish_refusal(self, uploader, project, version or file_version, rules)
            if refusal:
                raise refused(403, refusal)
        elif is_private(self.request, project, rules):
            raise refused(403, f"{project} is a private name of this index: it is never "
                               f"looked up on the upstream index")
        distribution = read_distribution(filename, data, refuse=uploader is not None)
        records = registry.of(self)
        if (uploader is not None and rules.account_quota
                and not self.request.access.is_admin(uploader)):
            refusal = quota_refusal(uploader, records.held_by(uploader), distribution.size,
                                    rules.account_quota)
            if refusal:
                raise refused(413, refusal)
        # A copy of the upstream's file keeps the upstream's upload time and yank.
        release = None if uploader is not None else upstream.release_of(
            self.request.locator.get_releases(project), filename)
        if release is not None and release.get("uploaded"):
            kwargs["last_modified"] = release["uploaded"]
        package = upload(self, filename, data, name, version, *args, **kwargs)
        records.record_file(filename, project, distribution)
        if token is not None and token.single_use:  # in the upload's own transaction
            records.revoke_api_token(token.id)
        if release is not None and release.get("yanked") is not None:
            records.yank(project, package.version, release["yanked"])
        return package

    ICache.upload = guarded_upload


def read_distribution(filename, data, refuse):
    """What the file says about itself (distributions.py). A wheel that contradicts
    its name is refused (400) from an account; an upstream copy is kept, unlisted
    metadata and all."""
    try:
        return read(filename, data)
    except NotADistribution as error:
        if refuse:
            raise refused(400, str(error)) from None
        return measured(data)


def _remember_deletes():
    """A project whose files an admin deletes stays in the registry: its name never
    falls back upstream, and its owner keeps it. The file's own record goes."""
    from pypicloud.cache.base import ICache

    delete = ICache.delete

    def remembering_delete(self, package):
        projects = registry.of(self)
        owner = first_uploader([stored(other) for other in self.all(package.name)])
        if owner:
            projects.claim(package.name, owner)
        delete(self, package)
        # After the delete: its new generation token must not come before it (on Redis,
        # which has no transaction around both).
        projects.forget_file(package.filename, package.name)

    ICache.delete = remembering_delete


# -- logins -------------------------------------------------------------------------------
def _remember_logins(logins):
    from pypicloud.access.base import IAccessBackend

    verify_user = IAccessBackend.verify_user

    def remembering_verify_user(self, username, password):
        if username == tokens.USER:
            return api_token_admits(self.request, password)
        if self.mutable:  # not what ppc-tasks configures: hashes may change under us
            return verify_user(self, username, password)
        # REMOTE_ADDR: the client nginx saw (waitress trusts its X-Forwarded-For).
        return logins.verify(username, password, self._get_password_hash(username) or "",
                             self.request.remote_addr or "",
                             lambda: verify_user(self, username, password))

    IAccessBackend.verify_user = remembering_verify_user


# -- API tokens ---------------------------------------------------------------------------
# How often a token's "last used" is written, at most, by one process.
TOKEN_USE_RECORDED_EVERY = datetime.timedelta(minutes=1)
_token_use_recorded = {}  # token id -> when this process last wrote its use


def api_token_admits(request, password):
    """Whether the password is a valid API token (tokens.py); the request then carries
    it (api_token) for what it may do."""
    from pypicloud.dateutil import utcnow

    if request.environ.get(API_TOKEN_PASSWORD) == password:  # asked again by the request
        return True
    parsed = tokens.parse(password)
    now = utcnow().replace(tzinfo=datetime.timezone.utc)
    stored = registry.of(request.db)
    token = stored.api_token(parsed[0]) if parsed else None
    if token is None or not token.admits(parsed[1], now):
        return False
    request.environ[API_TOKEN], request.environ[API_TOKEN_PASSWORD] = token, password
    recorded = _token_use_recorded.get(token.id)
    if recorded is None or now - recorded >= TOKEN_USE_RECORDED_EVERY:
        _token_use_recorded[token.id] = now
        stored.api_token_used(token.id, stamp(now))
    return True


API_TOKEN = "ppc_guard.api_token"  # the request's API token, once admitted
API_TOKEN_PASSWORD = "ppc_guard.api_token_password"  # ... and what admitted it


def api_token(request):
    """The API token the request logged in with (authenticated_userid is tokens.USER)."""
    request.authenticated_userid  # noqa: B018  (admits the token, if not done yet)
    return request.environ[API_TOKEN]


def _scope_api_tokens():
    """A token reads and uploads to the projects of its scope, and nothing else: no
    other project, no fallback to the upstream, no delete, no admin page."""
    from pypicloud.access.base import IAccessBackend

    has_permission = IAccessBackend.has_permission

    def scoped_has_permission(self, package, perm):
        if self.request.authenticated_userid != tokens.USER:
            return has_permission(self, package, perm)
        return perm in ("read", "write") and api_token(self.request).covers(package)

    IAccessBackend.has_permission = scoped_has_permission


# -- names that stay home -----------------------------------------------------------------
def is_private(request, name, rules):
    """Whether the upstream index is never asked for `name`: a ppc.private_names match,
    or a project an account ever published here (files now, or in the registry)."""
    name = canonical(name)
    if matches(name, rules.private_names):
        return True
    if request is None:
        return False
    cache = request.db
    if any(package.data.get("uploader") for package in cache.all(name)):
        return True
    return registry.of(cache).owner(name) is not None


def private_name_response(name):
    from pyramid.httpexceptions import HTTPNotFound

    return HTTPNotFound(f"{canonical(name)} is a private name of this index: it is never "
                        f"looked up on the upstream index")


class PrivateAwareLocator:
    """pypicloud's upstream locator, which finds nothing for a private name (fallback =
    cache or mirror would fetch, store and serve it)."""

    def __init__(self, locator, rules):
        self.locator, self.rules = locator, rules

    def get_releases(self, project_name):
        """The upstream's files of a project name, asked in its canonical form (the
        upstream decodes what it gets: a name is never passed on as it came)."""
        from pyramid.threadlocal import get_current_request

        if not is_name(project_name) or is_private(get_current_request(), project_name,
                                                   self.rules):
            return []
        return self.locator.get_releases(canonical(project_name))

    def __getattr__(self, attribute):
        return getattr(self.locator, attribute)


def _keep_private_names_home(config, rules, counted):
    import pypicloud.views.simple as simple
    from pyramid.events import ApplicationCreated

    redirect = simple._redirect  # fallback = redirect: a 302 to the upstream index

    def guarded_redirect(context, request):
        if is_private(request, context.name, rules):
            return private_name_response(context.name)
        return redirect(context, request)

    simple._redirect = guarded_redirect

    def wrap_locator(event):  # pypicloud makes its locator after this include
        app = event.app.registry
        # The upstream's JSON simple API, which carries yanks, sizes and upload times.
        locator = upstream.UpstreamLocator(app.fallback_base_url, counted) \
            if app.fallback_base_url else app.locator
        app.locator = PrivateAwareLocator(locator, rules)

    config.add_subscriber(wrap_locator, ApplicationCreated)


# -- /metrics -------------------------------------------------------------------------------
_figures_readers = []  # of the cache pypicloud configured (one per process)


def process_metrics(settings):
    """The process's metrics (metrics.py): its counters, and the figures read at each
    scrape (the store's, the data volume's, the certificate's, the last backup's)."""
    data_dir = settings.get("ppc_guard.data_dir", "")
    tls_dir = settings.get("ppc_guard.tls_dir", "")
    backup_record = settings.get("ppc_guard.backup_record", "")

    def figures():
        found = {}
        if _figures_readers:
            try:
                found.update(_figures_readers[-1]())
            except Exception:  # the cache database's trouble: the other figures still go out
                LOG.warning("the store's figures could not be read", exc_info=True)
        if data_dir:
            found.update(metrics.volume_figures(data_dir))
        if tls_dir:
            found.update(metrics.file_figures(tls_dir, backup_record))
        return found

    info = dict(item.split("=", 1) for item in settings.get("ppc_guard.build_info", "").split())
    return metrics.Metrics(figures, info)


def measuring(handler, registry_):
    """A tween, outermost: every answer counted and timed by route kind and status class
    (one that fails on the way as a 500); /metrics for the scrapers metrics.allowed lets
    in, 401 for anyone else."""
    settings = registry_.settings
    counted = registry_.ppc_metrics
    token_sha256 = settings.get("ppc_guard.metrics_token_sha256", "")
    allowed_networks = metrics.networks(settings.get("ppc_guard.metrics_allow", ""))

    def tween(request):
        started = time.perf_counter()
        if request.path_info == metrics.PATH:
            if metrics.allowed(request.remote_addr or "", request.headers.get("Authorization"),
                               token_sha256, allowed_networks):
                response = guard_response(200, counted.exposition(), metrics.CONTENT_TYPE)
            else:
                response = guard_response(401, json.dumps({"message": "scrape with the index's "
                                         "metrics credential"}).encode(),
                                         headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        else:
            try:
                response = handler(request)
            except Exception:
                counted.request(request.method, request.path_info, 500,
                                time.perf_counter() - started)
                raise
        counted.request(request.method, request.path_info, response.status_code,
                        time.perf_counter() - started)
        return response

    return tween


# -- every request ------------------------------------------------------------------------
def front_door(handler, registry_):
    """A tween: the cheap /health, trusted publishing's endpoints (publishing.py, asked
    anonymously), 429/503 for logins the guard turns away, 401 with a
    Basic challenge for anonymous requests to non-public paths, 400 or 404 for a path
    whose project name is none or whose file is not that project's (names.path_refusal),
    and a bare 500 for an unexpected error (pypicloud's answer carries its message: a
    path, a query and its values, a backend's words; pypicloud logged it, for the
    operator)."""
    realm = registry_.settings.get("pypi.realm", "pypi")
    trusted = publishing.TrustedPublishing.configured(registry_.settings)
    logins = registry_.ppc_metrics.logins
    last_hour = registry_.ppc_metrics.last_hour

    def answer(status, message, **headers):
        body = message if isinstance(message, dict) else {"message": message}
        return guard_response(status, json.dumps(body).encode(), headers=headers)

    def tween(request):
        if request.path_info == "/health" and not request.headers.get(DEEP_HEALTH_HEADER):
            return guard_response(200, b'{"status": "ok"}')
        if publishing.is_endpoint(request.path_info):  # anonymous: a CI job's way in
            return trusted_publishing_answer(request, trusted)
        try:
            user = request.authenticated_userid
        except TooManyFailures as error:
            logins.labels("throttled").inc()
            return answer(429, str(error), **{"Retry-After": str(error.retry_after),
                                               "X-Accel-Limit-Rate": TARPIT_BYTES_PER_SECOND})
        except TooBusy as error:
            logins.labels("busy").inc()
            return answer(503, str(error), **{"Retry-After": "1"})
        if request.authorization is not None:  # a login was asked for
            logins.labels("wrong" if user is None else "ok").inc()
        if not is_public(request.path_info) and user is None:
            return answer(401, "log in with an account of this index",
                          **{"WWW-Authenticate": f'Basic realm="{realm}"'})
        refusal = path_refusal(request.path_info)
        if refusal:
            return answer(*refusal)
        named = named_in(request.path_info) if user == tokens.USER else None
        if named and not api_token(request).covers(named[0]):
            # Not even a redirect to the upstream: a token reads its scope, and no more.
            return answer(404, f"{canonical(named[0])} is not in this token's scope")
        response = handler(request)
        if request.path_info == "/health":  # the deep check, from inside the container
            return with_last_hour(response, last_hour.figures())
        if response.status_code == 500:
            return answer(500, "the server failed to answer: its log says why")
        return response

    return tween


def with_last_hour(response, figures):
    """pypicloud's deep /health with the server's answers of the last hour beside its
    parts (`fab status` shows them; the name is ppc_tasks/facts.py's LAST_HOUR)."""
    try:
        report = json.loads(response.body)
    except ValueError:
        return response
    if not isinstance(report, dict):
        return response
    report["ppc_last_hour"] = figures
    return guard_response(response.status_code, json.dumps(report).encode())


# -- trusted publishing -------------------------------------------------------------------
def trusted_publishing_answer(request, trusted):
    offers = request.accept.acceptable_offers(publishing.OFFERS)
    # Anyone may ask: never more than the largest request it takes is read into memory.
    body = request.body_file.read(publishing.MAX_BODY + 1)
    asked = publishing.Asked(request.path_info, request.method, body,
                             request.GET.get("discover"), request.remote_addr or "",
                             offers[0][0] if offers else None, request.host_url)
    now = datetime.datetime.now(datetime.timezone.utc)
    if asked.method == "POST":  # a used OIDC token and the minted one, or none of them
        with request.tm:
            result = trusted.answer(asked, registry.of(request.db), now)
    else:
        result = trusted.answer(asked, None, now)
    headers = dict(result.headers)
    if result.status == 429:  # as a guessed login: slowly
        headers["X-Accel-Limit-Rate"] = TARPIT_BYTES_PER_SECOND
    return guard_response(result.status, result.encoded(), result.media_type, headers)


def guard_response(status, body, content_type="application/json", headers=None):
    """An answer of the guard's own. Its headers go in after the body: Response(headers=)
    would replace the Content-Type and Content-Length the body set."""
    from pyramid.response import Response

    response = Response(status=status, content_type=content_type, body=body)
    response.headers.update(headers or {})
    return response


# -- answers kept ------------------------------------------------------------------------
_token_readers = []  # of the cache pypicloud configured (one per process)


def _read_tokens_where_the_cache_is():
    """pypicloud's cache configures itself after this include: its connection settings
    are caught on their way, for reading the generation token without a request."""
    from pypicloud.cache import RedisCache, SQLCache

    for cache_class in (SQLCache, RedisCache):
        def configure(cls, settings, configure=cache_class.configure.__func__):
            cache_settings = configure(cls, settings)
            _token_readers.append(registry.token_reader(cls, cache_settings))
            _figures_readers.append(registry.figures_reader(cls, cache_settings))
            return cache_settings
        cache_class.configure = classmethod(configure)


# Headers of a kept answer given again; the rest (a session's cookie) are the request's own.
KEPT_HEADERS = ("content-type", "vary", "cache-control")


def kept_answers(handler, registry_):
    """A tween: the simple API's pages and core metadata files, answered again from
    answers.py while their project's generation token stays the same (every upload,
    delete and yank sets a new one); made by the views, and kept, when they say they
    may be."""
    from pyramid.response import Response

    kept = Answers()
    token = _token_readers[-1]
    kept_answers = registry_.ppc_metrics.kept_answers

    def tween(request):
        kept_as = views.kept_as(request.path_info)
        if request.method != "GET" or request.query_string or kept_as is None \
                or request.access.mutable:  # permissions may change under us: not kept
            return handler(request)
        scope, path = kept_as
        # What makes one answer differ from another: so many keys, and no more, as
        # there are accounts, names of the index and pages and files it holds.
        user = request.authenticated_userid
        if user == tokens.USER:  # each token sees its own scope
            user = f"{user}:{api_token(request).id}"
        key = (user, request.application_url, path, views.media_type(request))
        try:
            current = token(scope)
        except Exception:  # the cache database's trouble: the view meets it, as before
            LOG.warning("the generation token could not be read", exc_info=True)
            return handler(request)
        answer = kept.get(key, current)
        kept_answers.labels("miss" if answer is None else "hit").inc()
        if answer is not None:
            return Response(headerlist=list(answer.headers), body=answer.body)
        response = handler(request)
        if response.status_code == 200 and request.environ.get(views.MAY_KEEP):
            kept.keep(key, current, [(name, value) for name, value in response.headerlist
                                   if name.lower() in KEPT_HEADERS], response.body)
        return response

    return tween
