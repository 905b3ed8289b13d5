"""What the index tells an operator's Prometheus at /metrics, in its text format, written
by prometheus_client (one registry per process: waitress serves from threads of one
process; a replacement server is a process of its own, whose counters start again as
Prometheus expects of a restart).

Labels carry kinds and classes only (route kind, status class, outcome, reason): never an
account, a project name or a secret. Each index host reports its own; Prometheus sums.

Who may read it (hooks.py asks `allowed`): a scraper that sends the scrape credential as
a bearer token (the index keeps its sha256), or one from an address the settings allow
(`metrics_allow`). Everyone else gets 401, as anonymous requests do.

Plain classes (no pyramid): the ppc-tasks repo unit-tests them.
"""
from __future__ import annotations

import collections
import datetime
import hashlib
import hmac
import ipaddress
import os
import threading
import time

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

from .names import METADATA_SUFFIX

PATH = "/metrics"
CONTENT_TYPE = CONTENT_TYPE_LATEST
ROUTE_KINDS = ("simple", "metadata", "file", "upload", "api", "admin", "other")
# Seconds: the simple API answers in about a millisecond kept, a hundred made; uploads take
# longer.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LOGIN_OUTCOMES = ("ok", "wrong", "throttled", "busy")


def route_kind(method, path):
    """What a request is, for its labels: the simple API's pages, core metadata files,
    file downloads, uploads, the JSON/admin API, or anything else."""
    parts = path.split("/")
    if method == "POST" and len(parts) == 3 and parts[1] in ("simple", "pypi") and not parts[2]:
        return "upload"
    if parts[1:2] in (["simple"], ["pypi"]):
        return "api" if path.endswith("/json") else "simple"
    if parts[1:3] == ["api", "package"] and len(parts) == 5 and parts[4]:
        return "metadata" if parts[4].endswith(METADATA_SUFFIX) else "file"
    if parts[1:2] == ["packages"]:
        return "file"
    if parts[1:2] == ["api"]:
        return "api"
    if parts[1:2] == ["admin"]:
        return "admin"
    return "other"


def status_class(status):
    return f"{status // 100}xx"


class Metrics:
    """The index's counters and histograms, and the figures read at each scrape."""

    def __init__(self, figures=None, info=None):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ppc_http_requests", "Requests answered, by route kind and status class",
            ["route", "status_class"], registry=self.registry)
        self.latency = Histogram(
            "ppc_http_request_duration_seconds", "Time to answer a request, by route kind",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.uploads = Counter(
            "ppc_uploads", "Uploads taken (outcome ok) or refused, by reason",
            ["outcome"], registry=self.registry)
        self.logins = Counter(
            "ppc_logins", "Logins checked, by outcome: ok, wrong, throttled, busy",
            ["outcome"], registry=self.registry)
        self.kept_answers = Counter(
            "ppc_kept_answers", "Simple API answers given again (hit) or made (miss)",
            ["result"], registry=self.registry)
        self.upstream_fetches = Counter(
            "ppc_upstream_fetches", "Look-ups on the upstream index", registry=self.registry)
        self.upstream_failures = Counter(
            "ppc_upstream_fetch_failures", "Look-ups on the upstream index that failed",
            registry=self.registry)
        for route in ROUTE_KINDS:  # every series there from the start: rates need a zero
            self.latency.labels(route)
        for outcome in LOGIN_OUTCOMES:
            self.logins.labels(outcome)
        self.uploads.labels("ok")
        for result in ("hit", "miss"):
            self.kept_answers.labels(result)
        if figures is not None or info is not None:
            self.registry.register(Figures(figures or (lambda: {}), info or {}))
        self.last_hour = LastHour()

    def request(self, method, path, status, seconds):
        route = route_kind(method, path)
        self.requests.labels(route, status_class(status)).inc()
        self.latency.labels(route).observe(seconds)
        if path not in ("/health", PATH):  # the answers clients got, not checks and scrapes
            self.last_hour.add(status)

    def exposition(self):
        return generate_latest(self.registry)


class LastHour:
    """Answers and server errors (5xx) of the last hour, in minutes, for `fab status`
    (through the deep /health): a person's figure beside Prometheus' history. It starts
    with the server."""

    MINUTES = 60

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.minutes = collections.deque()  # [minute, answers, server errors], oldest first
        self.lock = threading.Lock()

    def add(self, status):
        minute = int(self.clock() // 60)
        with self.lock:
            if not self.minutes or self.minutes[-1][0] != minute:
                self.minutes.append([minute, 0, 0])
                while self.minutes[0][0] <= minute - self.MINUTES:
                    self.minutes.popleft()
            self.minutes[-1][1] += 1
            self.minutes[-1][2] += status >= 500

    def figures(self):
        """{"answers": N, "server_errors": M} of the last 60 minutes."""
        oldest = int(self.clock() // 60) - self.MINUTES
        with self.lock:
            kept = [counts for counts in self.minutes if counts[0] > oldest]
        return {"answers": sum(counts[1] for counts in kept),
                "server_errors": sum(counts[2] for counts in kept)}


class Figures:
    """A collector of what is read at each scrape: `figures()` gives some of store_projects,
    store_files, store_bytes, cache_connections_in_use, cache_connections_idle,
    cache_pool_size, volume_free_bytes, volume_size_bytes,
    certificate_expiry_seconds, ca_expiry_seconds, backup_verified_seconds (each when
    known); `info` labels the running image and ppc-tasks release."""

    HELP = {
        "store_projects": ("ppc_store_projects", "Projects the index holds files of"),
        "store_files": ("ppc_store_files", "Files the index holds"),
        "store_bytes": ("ppc_store_bytes", "Bytes of the files the index holds"),
        "cache_connections_in_use": ("ppc_cache_connections_in_use",
                                     "Connections of the cache's pool that requests hold"),
        "cache_connections_idle": ("ppc_cache_connections_idle",
                                   "Open connections of the cache's pool, waiting for a request"),
        "cache_pool_size": ("ppc_cache_pool_size",
                            "Connections the cache's pool keeps open (more open when busy)"),
        "volume_free_bytes": ("ppc_volume_free_bytes",
                              "Free bytes of the volume that holds the index's data"),
        "volume_size_bytes": ("ppc_volume_size_bytes",
                              "Size in bytes of the volume that holds the index's data"),
        "certificate_expiry_seconds": (
            "ppc_tls_certificate_expiry_timestamp_seconds",
            "When the certificate nginx serves expires (Unix time)"),
        "ca_expiry_seconds": ("ppc_tls_ca_expiry_timestamp_seconds",
                              "When the CA that signed it expires (Unix time)"),
        "backup_verified_seconds": (
            "ppc_backup_last_verified_timestamp_seconds",
            "When the last backup that was verified was made (Unix time)"),
    }

    def __init__(self, figures, info):
        self.figures, self.info = figures, info

    def describe(self):
        return []  # read at each scrape: nothing to check when it is registered

    def collect(self):
        if self.info:
            family = InfoMetricFamily("ppc_build", "The image the index runs and the ppc-tasks "
                                                   "release that deployed it")
            family.add_metric([], self.info)
            yield family
        for key, value in self.figures().items():
            name, text = self.HELP[key]
            yield GaugeMetricFamily(name, text, value=value)


def file_figures(tls_dir, backup_record):
    """The certificate's and the CA's expiry (PEM copies in `tls_dir`) and when the last
    verified backup was made (`backup_record`: an ISO time), for those that are there."""
    from cryptography import x509

    found = {}
    for key, name in (("certificate_expiry_seconds", "certificate.pem"),
                      ("ca_expiry_seconds", "ca.pem")):
        try:
            with open(os.path.join(tls_dir, name), "rb") as stream:
                certificate = x509.load_pem_x509_certificates(stream.read())[0]
        except (OSError, ValueError, IndexError):
            continue
        found[key] = certificate.not_valid_after_utc.timestamp()
    try:
        with open(backup_record, encoding="utf-8") as stream:
            made = datetime.datetime.strptime(stream.read().strip(), "%Y-%m-%dT%H:%M:%SZ")
    except (OSError, ValueError):
        return found
    found["backup_verified_seconds"] = made.replace(tzinfo=datetime.timezone.utc).timestamp()
    return found


def volume_figures(path):
    """Free and total bytes of the file system that holds `path`."""
    found = os.statvfs(path)
    return {"volume_free_bytes": found.f_bavail * found.f_frsize,
            "volume_size_bytes": found.f_blocks * found.f_frsize}


def allowed(address, authorization, token_sha256, networks):
    """Whether a scrape may read /metrics: the credential as a bearer token, or an address
    in `networks` (ipaddress networks)."""
    scheme, _, credential = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token_sha256 and hmac.compare_digest(
            hashlib.sha256(credential.strip().encode()).hexdigest(), token_sha256):
        return True
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(client in network for network in networks)


def networks(text):
    """The settings' `metrics_allow`, as config.ini writes it (space-separated)."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in text.split())
