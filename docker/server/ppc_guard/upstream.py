"""What the upstream index (PyPI) holds of a project, read from its own simple API in
JSON (PEP 691), for pypicloud's fallback = cache and mirror: the files, their hashes
and Python versions as pypicloud's own locator gives them, and what it drops: each
file's yank (PEP 592), size and upload time (PEP 700). A page of the index lists them,
and a file the index caches keeps its yank.
"""
import datetime
import posixpath
import urllib.parse

from .names import project_of
from .pages import JSON
CACHE_SECONDS = 15 * 60  # as pypicloud's own locator keeps an answer
TIMEOUT_SECONDS = 20


def releases_of(page, page_url):
    """pypicloud's release dicts (name, version, summary, url, digests, requires_python)
    with yanked, size and uploaded too, from a PEP 691 JSON page."""
    releases = []
    for file in page.get("files", []):
        named = project_of(file.get("filename", ""))
        if named is None or "url" not in file:
            continue
        releases.append({
            "name": named[0], "version": named[1], "summary": None,
            "url": urllib.parse.urljoin(page_url, file["url"]),
            "digests": file.get("hashes") or {},
            "requires_python": file.get("requires-python"),
            "yanked": yank_of(file.get("yanked", False)),
            "size": file.get("size"),
            "uploaded": parse_time(file.get("upload-time")),
        })
    return releases


def yank_of(value):
    """The reason of a PEP 691 "yanked" value ("" for none given), or None."""
    if value is True:
        return ""
    return value if isinstance(value, str) and value else None


def parse_time(text):
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def release_of(releases, filename):
    return next((release for release in releases
                 if posixpath.basename(urllib.parse.urlparse(release["url"]).path) == filename), None)


class UpstreamLocator:
    """pypicloud's locator interface (get_releases), on the upstream's JSON simple API."""

    def __init__(self, base_url, counted):
        from pypicloud.util import TimedCache

        self.base_url, self.counted = base_url.rstrip("/"), counted  # metrics.Metrics
        self._cache = TimedCache(CACHE_SECONDS, self._fetch)

    def get_releases(self, project_name):
        """The project's files upstream ([] when it has none, or cannot be asked: a
        failure is not kept, the next request asks again)."""
        return self._cache.get(project_name, [])

    def _fetch(self, project_name):
        import logging

        import requests

        url = f"{self.base_url}/simple/{project_name}/"
        self.counted.upstream_fetches.inc()
        try:
            response = requests.get(url, headers={"Accept": JSON}, timeout=TIMEOUT_SECONDS)
            if response.status_code == 404:
                return []  # no such project upstream: kept, as an answer
            response.raise_for_status()
            return releases_of(response.json(), response.url)
        except (requests.RequestException, ValueError) as error:
            logging.getLogger(__name__).warning("upstream %s: %s", url, error)
            self.counted.upstream_failures.inc()
            return None
