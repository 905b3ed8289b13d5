"""Run on the index host (python3 -): the same downloads through nginx with TLS and
directly to pypicloud on 127.0.0.1:3031, round after round, each round on one
keep-alive connection as one pip process would. Prints JSON: seconds per round."""

import base64
import http.client
import json
import os
import ssl
import statistics
import time

PACKAGES = json.loads(os.environ["BENCH_PACKAGES"])  # [[name, file name], ...]
AUTH = "Basic " + base64.b64encode(os.environ["BENCH_CREDENTIALS"].encode()).decode()
HEADERS = {"Host": os.environ["BENCH_HOST"], "Authorization": AUTH}
ROUNDS = 15
ENOUGH_SECONDS = 20  # a slow index gets fewer rounds (at least 3)


def one_round(connect) -> float:
    started = time.perf_counter()
    connection = connect()
    for name, filename in PACKAGES:
        for path in (f"/simple/{name}/", f"/api/package/{name}/{filename}"):
            connection.request("GET", path, headers=HEADERS)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"{path}: {response.status}")
    connection.close()
    return time.perf_counter() - started


# Made once: loading a trust store is the client's cost, not the front door's.
CONTEXT = ssl.create_default_context()
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE  # the same handshake; no trust store needed here


def through_nginx():
    return http.client.HTTPSConnection("127.0.0.1", 443, context=CONTEXT, timeout=30)


def direct():
    return http.client.HTTPConnection("127.0.0.1", 3031, timeout=30)


def median_round(connect) -> float:
    one_round(connect)  # warm up
    timings = []
    started = time.perf_counter()
    while len(timings) < ROUNDS and (len(timings) < 3 or time.perf_counter() - started < ENOUGH_SECONDS):
        timings.append(one_round(connect))
    return statistics.median(timings)


results = {}
for label, connect in (("nginx_tls", through_nginx), ("direct", direct)):
    try:
        results[label] = median_round(connect)
    except (OSError, SystemExit) as error:  # an index too slow to answer is a result too
        results[label] = None
        results[f"{label}_error"] = str(error) or type(error).__name__
print(json.dumps(results))
