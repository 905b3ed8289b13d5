#!/opt/pypicloud/bin/python
"""Exit 0 when pypicloud answers on its port: the image's HEALTHCHECK and the deploy's wait.

With --login, a "user:password" line on stdin: exit 0 when an authenticated /simple/
request is answered (the deploy's check of a new container before it takes traffic).
With --report, also print /health's answer (JSON: access, cache, storage, each "" when
healthy, else what is wrong): `fab status` shows it.
"""
import base64
import sys
import urllib.error
import urllib.request

# The deep check (access, cache, storage): ppc_guard answers /health without it otherwise.
request = urllib.request.Request("http://127.0.0.1:3031/health", headers={"X-PPC-Health": "deep"})
if sys.argv[1:] == ["--login"]:
    login = sys.stdin.readline().rstrip("\n").encode()
    request = urllib.request.Request("http://127.0.0.1:3031/simple/", headers={
        "Authorization": "Basic " + base64.b64encode(login).decode()})
report = sys.argv[1:] == ["--report"]
try:
    # A report waits longer: a cache or bucket that is down may take seconds to say so.
    with urllib.request.urlopen(request, timeout=20 if report else 4) as response:
        answer = response.read()
except urllib.error.HTTPError as error:  # /health says 500 when a part is unhealthy
    if report:
        sys.stdout.write(error.read().decode(errors="replace"))
    sys.exit(f"pypicloud answers {request.full_url} with {error.code}")
except Exception as error:  # any other failure means "not healthy yet"
    sys.exit(f"pypicloud is not answering {request.full_url}: {error}")
if report:
    sys.stdout.write(answer.decode(errors="replace"))
