#!/opt/pypicloud/bin/python
"""Exit 0 when pypicloud answers on its port: the image's HEALTHCHECK and the deploy's wait.

With --login, a "user:password" line on stdin: exit 0 when an authenticated /simple/
request is answered (the deploy's check of a new container before it takes traffic).
"""
import base64
import sys
import urllib.request

request = urllib.request.Request("http://127.0.0.1:3031/health")
if sys.argv[1:] == ["--login"]:
    login = sys.stdin.readline().rstrip("\n").encode()
    request = urllib.request.Request("http://127.0.0.1:3031/simple/", headers={
        "Authorization": "Basic " + base64.b64encode(login).decode()})
try:
    urllib.request.urlopen(request, timeout=4)
except Exception as error:  # any failure means "not healthy yet"
    sys.exit(f"pypicloud is not answering {request.full_url}: {error}")
