"""Trusted publishing's endpoints, where PyPI has them: at the host's root, as uv and
pypa/gh-action-pypi-publish build their URLs from the host alone. They answer
anonymously (a CI job has only its OIDC token). An index with no trusted publisher
configured answers as PyPI does when the feature is off: uv and the action then say so.

Plain functions: the ppc-tasks repo unit-tests them.
"""
PREFIX = "/_/oidc/"
NOT_ENABLED = "Trusted publishing functionality not enabled"
# path -> the method it takes
ENDPOINTS = {f"{PREFIX}audience": "GET", f"{PREFIX}mint-token": "POST",
             f"{PREFIX}github/mint-token": "POST", f"{PREFIX}burn-token": "POST"}


def is_endpoint(path):
    return path.startswith(PREFIX)


def answer(path, method):
    """(HTTP status, JSON body) for a request to a trusted publishing endpoint, in PyPI's
    shapes: the audience's 403 and the token endpoints' 422 with an error code."""
    wanted = ENDPOINTS.get(path)
    if wanted is None:
        return 404, {"message": f"no such endpoint: {path}"}
    if method != wanted:
        return 405, {"message": f"{path} takes {wanted}"}
    if path == f"{PREFIX}audience":
        return 403, {"message": NOT_ENABLED}
    return 422, {"message": "Token request failed",
                 "errors": [{"code": "not-enabled", "description": NOT_ENABLED}]}
