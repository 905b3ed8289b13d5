"""HTTPS requests to a test index as any client could make them: chosen Host header,
chosen SNI, Basic auth or none, raw multipart uploads. Certificate verification is on."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import shlex
import socket
import ssl
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import parse_sdist_filename, parse_wheel_filename
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Response:
    status: int | None  # None: the server closed the connection without answering
    body: bytes
    headers: dict[str, str]  # names in lower case


def request(address: str, path: str, *, ca: Path, sni: str | None, host: str,
            auth: tuple[str, str] | None = None, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None, port: int = 443, verify: bool = True,
            timeout: float = 15) -> Response:
    """With verify the certificate must be valid for the SNI name (or, without SNI, be
    issued by the CA)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = verify and sni is not None
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((address, port), timeout=timeout)
    tls = context.wrap_socket(raw, server_hostname=sni)
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    connection.sock = tls
    all_headers = {"Host": host, **(headers or {})}
    if auth:
        all_headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    try:
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return Response(response.status, response.read(),
                        {name.lower(): value for name, value in response.getheaders()})
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return Response(None, b"", {})
    finally:
        connection.close()


def figures(response: Response) -> dict:
    """A /metrics answer's samples: {(sample name, sorted labels): value}."""
    assert response.status == 200, response.body
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.body.decode())
            for sample in family.samples}


# A signed download URL of an S3 store is fetched directly, never through the machine's proxy.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def files_of(address: str, project: str, *, ca: Path, name: str,
             auth: tuple[str, str]) -> dict[str, str]:
    """{file name: sha256} of every file of a project, as a client downloads them (from
    an index on S3, a download is a redirect to a signed URL of the bucket)."""
    page = request(address, f"/simple/{project}/", ca=ca, sni=name, host=name, auth=auth)
    assert page.status == 200, page
    result = {}
    for link in re.findall(r'href="https://[^/"]+(/[^"#]+)', page.body.decode()):
        download = request(address, link, ca=ca, sni=name, host=name, auth=auth)
        body = download.body
        if download.status in (301, 302, 303, 307):
            with DIRECT.open(download.headers["location"], timeout=15) as redirected:
                body = redirected.read()
        else:
            assert download.status == 200, (link, download.status)
        result[link.rsplit("/", 1)[1]] = hashlib.sha256(body).hexdigest()
    return result


def upload_dist(call, auth: tuple[str, str], path: Path) -> Response:
    """A distribution file uploaded as twine sends it, its project and version read from
    its file name; call(path, auth, **request) makes the request (a test's `index`)."""
    if path.suffix == ".whl":
        name, version, _, _ = parse_wheel_filename(path.name)
    else:
        name, version = parse_sdist_filename(path.name)
    body, headers = upload_form({":action": "file_upload", "name": name,
                                 "version": str(version)}, path.name, path.read_bytes())
    return call("/simple/", auth, method="POST", body=body, headers=headers)


def upload_form(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, dict]:
    """A legacy-upload form (what twine sends), with any field values at all."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
                 f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                 + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# A request made from inside a test host (its address, its trust): Python there makes it.
HOST_REQUEST = """
import json, ssl, sys, urllib.error, urllib.request
url, method, ca, headers = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
request = urllib.request.Request(url, method=method, data=sys.stdin.buffer.read() or None,
                                 headers=headers)
try:
    answer = urllib.request.urlopen(request, context=ssl.create_default_context(cafile=ca))
except urllib.error.HTTPError as error:
    answer = error
sys.stdout.write(json.dumps({"status": answer.status, "body": answer.read().decode()}))
"""


def from_host(host, url: str, ca: str, method: str = "GET", headers: dict | None = None,
              body: bytes = b"") -> tuple[int, str]:
    """(status, body) of a request `host` makes, trusting the CA file `ca` it holds."""
    host.exec("cat > /tmp/ppc-request.py", input=HOST_REQUEST.encode())
    answer = json.loads(host.out(
        f"python3 /tmp/ppc-request.py {shlex.quote(url)} {method} {shlex.quote(ca)} "
        f"{shlex.quote(json.dumps(headers or {}))}", input=body))
    return answer["status"], answer["body"]
