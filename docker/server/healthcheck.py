#!/opt/pypicloud/bin/python
"""Exit 0 when pypicloud answers on its port: the image's HEALTHCHECK and the deploy's wait."""
import sys
import urllib.request

try:
    urllib.request.urlopen("http://127.0.0.1:3031/health", timeout=4)
except Exception as error:  # any failure means "not healthy yet"
    sys.exit(f"pypicloud is not answering: {error}")
