"""The simple API's pages (pages.py) and the core metadata files, put in front of
pypicloud's own views: what a page lists, where a name falls back to and who may read
it stay pypicloud's decisions (with the guard's hooks); the guard adds what modern
clients read, in the form they ask for."""
import logging
import posixpath

from . import pages, registry, upstream
from .names import METADATA_SUFFIX, canonical, project_of, same_version

LOG = logging.getLogger(__name__)
MAX_REASON = 200  # a yank's reason: one line, as pip prints it
# In a request's environ: its answer may be kept (answers.py). Said by the views below
# of answers made only of what the index holds, none of the upstream's.
MAY_KEEP = "ppc_guard.may_keep"


def install(config):
    from pypicloud.route import (
        AdminResource,
        APIPackageFileResource,
        SimplePackageResource,
        SimpleResource,
    )
    import pypicloud.views.api as api
    import pypicloud.views.simple as simple

    packages_to_dict = simple.packages_to_dict

    def with_versions_and_times(request, packages):
        listed = packages_to_dict(request, packages)
        for package in packages:
            listed[package.filename].update(version=package.version,
                                            uploaded=package.last_modified)
        return listed

    simple.packages_to_dict = with_versions_and_times
    get_fallback_packages = simple.get_fallback_packages

    def with_upstream_details(request, package_name, redirect=True):
        """fallback = cache and mirror: the upstream's files, with what the upstream
        says of each (yank, size, upload time), which pypicloud drops."""
        listed = get_fallback_packages(request, package_name, redirect)
        releases = request.locator.get_releases(package_name)
        for filename, entry in listed.items():
            release = upstream.release_of(releases, filename)
            if release is not None:
                entry.update(version=release["version"], yanked=release.get("yanked"),
                             size=release.get("size"), uploaded=release.get("uploaded"))
        return listed

    simple.get_fallback_packages = with_upstream_details

    # ppc_page matches every request: a view with it outranks pypicloud's without.
    config.add_view_predicate("ppc_page", view_predicate("ppc_page", lambda context, request: True))
    config.add_view_predicate("ppc_metadata_file", view_predicate(
        "ppc_metadata_file", lambda context, request: context.filename.endswith(METADATA_SUFFIX)))
    # One predicate more than pypicloud's views of the same paths: these are asked first.
    config.add_view(index_page, context=SimpleResource, request_method="GET", subpath=(),
                    ppc_page=True)
    config.add_view(project_page, context=SimplePackageResource, request_method="GET",
                    subpath=(), ppc_page=True)
    config.add_view(metadata_file, context=APIPackageFileResource, request_method="GET",
                    permission="read", ppc_metadata_file=True)
    config.add_view(sized(api.download_package), context=APIPackageFileResource,
                    request_method="GET", permission="read", ppc_metadata_file=False)
    # PUT (with {"reason": ...}) yanks a release, DELETE takes the yank back: admins only.
    config.add_view(yank_release, context=AdminResource, name="yank",
                    subpath=("name/*", "version/*"), request_method=("PUT", "DELETE"),
                    permission="admin", renderer="json")


def kept_as(path):
    """How a kept answer to a GET of `path` is kept: the scope whose generation token it
    is made under (the project's for its page and its metadata files, EVERY_PROJECT's
    for the index page), and the path as kept, the project's name in its canonical form
    (every spelling of a name gets the same answer: no account can keep one page over
    and over); None: no view below keeps it."""
    parts = path.split("/")
    if len(parts) == 3 and parts[1] in ("simple", "pypi") and parts[2] == "":
        return registry.EVERY_PROJECT, path
    if len(parts) == 4 and parts[1] in ("simple", "pypi") and parts[2] and parts[3] == "":
        name = canonical(parts[2])
        return name, f"/{parts[1]}/{name}/"
    if len(parts) == 5 and parts[1:3] == ["api", "package"] and parts[3] \
            and parts[4].endswith(METADATA_SUFFIX):
        name = canonical(parts[3])
        return name, f"/api/package/{name}/{parts[4]}"
    return None


def view_predicate(name, holds):
    """A pyramid view predicate `name = VALUE`: true when holds(context, request) is VALUE."""
    class Predicate:
        def __init__(self, value, config):
            self.value = value

        def text(self):
            return f"{name} = {self.value}"

        phash = text

        def __call__(self, context, request):
            return holds(context, request) == self.value

    return Predicate


def media_type(request):
    """The form of the page the client asked for (PEP 691): HTML unless it prefers JSON."""
    offers = request.accept.acceptable_offers(pages.MEDIA_TYPES)
    return offers[0][0] if offers else pages.LEGACY_HTML


def page_response(request, json_page, html_page):
    from pyramid.response import Response

    chosen = media_type(request)
    if chosen == pages.JSON:
        response = Response(json=json_page())
    else:
        response = Response(body=html_page(), charset="utf-8")
    response.content_type = chosen
    response.vary = ("Accept",)
    return response


def with_slash(view):
    """A page's address ends in a slash: pip and uv both ask so."""
    def view_with_slash(context, request):
        from pyramid.httpexceptions import HTTPMovedPermanently

        if not request.path.endswith("/"):
            return HTTPMovedPermanently(location=request.path_url + "/" + (
                "?" + request.query_string if request.query_string else ""))
        return view(context, request)
    return view_with_slash


@with_slash
def index_page(context, request):
    names = [name for name in request.db.distinct()
             if request.access.has_permission(name, "read")]
    request.environ[MAY_KEEP] = True
    return page_response(request, lambda: pages.index_json(names),
                         lambda: pages.index_html(names))


@with_slash
def project_page(context, request):
    import pypicloud.views.simple as simple

    found = simple._package_versions(context, request)  # pypicloud's (fallback, access)
    if not isinstance(found, dict):
        return found  # a redirect, a login prompt or a 404
    name = canonical(context.name)
    records = registry.of(request.db)
    recorded = records.files_of(name)
    files = listed_files(found["pkgs"], recorded, records.yanks_of(name))
    # What the upstream index lists (fallback = mirror; files not held, which are not
    # recorded) changes without the index knowing.
    request.environ[MAY_KEEP] = not request.registry.always_show_upstream and all(
        filename in recorded for filename in found["pkgs"])
    return page_response(request, lambda: pages.project_json(name, files),
                         lambda: pages.project_html(name, files))


def listed_files(found, recorded, yanks):
    """ListedFile values of what pypicloud found for a page ({filename: its entry})."""
    files = []
    for filename, entry in found.items():
        record = recorded.get(filename)
        version = entry.get("version") or (project_of(filename) or ("", ""))[1]
        url = entry.get("non_hashed_url") or entry["url"].split("#", 1)[0]
        # A file of the upstream index carries the upstream's word on its yank.
        yanked = entry["yanked"] if "yanked" in entry else yank_reason(version, yanks)
        files.append(pages.ListedFile(
            filename=filename, url=url, version=version,
            sha256=entry.get("hash_sha256"), requires_python=entry.get("requires_python"),
            size=record.size if record else entry.get("size"), uploaded=entry.get("uploaded"),
            metadata_sha256=record.metadata_sha256 if record else None, yanked=yanked))
    return files


def yank_reason(version, yanks):
    for yanked_version, reason in yanks.items():
        if same_version(version, yanked_version):
            return reason
    return None


def held_version(db, name, version):
    """The version as the index stores a release of `name` (1.0 when asked for 1.0.0),
    or None when it holds none."""
    return next((package.version for package in db.all(name)
                 if same_version(package.version, version)), None)


def yank_release(context, request):
    """Yank (PUT) or unyank (DELETE) every file of a release (PEP 592): clients skip it
    unless a requirement pins it exactly. Answers what the release is now, and whether
    that changed."""
    from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound

    name = canonical(request.named_subpaths["name"])
    version = request.named_subpaths["version"]
    held = held_version(request.db, name, version)
    if held is None:
        return HTTPNotFound(f"{name} has no release {version}")
    records = registry.of(request.db)
    yanks = records.yanks_of(name)
    before = yank_reason(held, yanks)
    for yanked_version in [known for known in yanks if same_version(known, held)]:
        records.unyank(name, yanked_version)
    after = None
    if request.method == "PUT":
        try:
            after = request.json_body.get("reason", "")
        except (ValueError, AttributeError):
            after = None
        if not isinstance(after, str) or len(after) > MAX_REASON or not after.isprintable():
            return HTTPBadRequest(f"a yank's reason is one line of at most {MAX_REASON} "
                                  f"characters")
        records.yank(name, held, after)
    LOG.info("%s %s %s by %s%s", "yanked" if after is not None else "unyanked", name,
             held, request.authenticated_userid, f": {after}" if after else "")
    return {"name": name, "version": held, "yanked": after, "changed": before != after}


def sized(download_package):
    """pypicloud's download, with the file's recorded size as its Content-Length when
    pypicloud streams it (`stream_files` from S3, a first fetch with `fallback: cache`):
    without a length nginx cannot answer a byte range, and clients that read a wheel's
    end (its zip directory) must download it whole."""
    def download_with_length(context, request):
        response = download_package(context, request)
        if response.status_code == 200 and response.content_length is None:
            record = registry.of(request.db).files_of(canonical(context.name)).get(
                posixpath.basename(context.filename))
            if record is not None:
                response.content_length = record.size
        return response
    return download_with_length


def metadata_file(context, request):
    from pyramid.httpexceptions import HTTPNotFound
    from pyramid.response import Response

    filename = posixpath.basename(context.filename[:-len(METADATA_SUFFIX)])
    package = request.db.fetch(filename)
    metadata = None
    if package is not None and package.name == canonical(context.name):
        metadata = registry.of(request.db).metadata(filename)
    if metadata is None:
        return HTTPNotFound(f"no core metadata is served for {filename}")
    response = Response(body=metadata, content_type="application/octet-stream")
    response.cache_control = {"public": True, "max_age": request.registry.package_max_age}
    request.environ[MAY_KEEP] = True
    return response
