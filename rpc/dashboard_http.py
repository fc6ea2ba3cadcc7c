"""The dashboard's files over HTTP: which GET request gets which file, with which headers.

    GET /  with `Accept: text/html` (a browser)   rpc/dashboard/index.html
    GET /dashboard                                 the same page, whatever the Accept header
    GET /dashboard/app.js, /dashboard/style.css    its script and style sheet

Everything else (GET / from curl or a script: the method list; the URI form) is the JSON-RPC
server's (rpc/server.py). The files ship inside the package (pyproject.toml package data) and
are read on each request: a few kilobytes, no build step, nothing fetched from elsewhere.
Every response carries a Content-Security-Policy that lets the page load only its own script
and style sheet and talk only to its own origin (JSON-RPC and the websocket), so even a value
that reached the page's HTML could not run; the script also inserts every value as text.
"""

from importlib import resources
from typing import NamedTuple

FILES = {"/dashboard": ("index.html", b"text/html; charset=utf-8"),
         "/dashboard/app.js": ("app.js", b"text/javascript; charset=utf-8"),
         "/dashboard/style.css": ("style.css", b"text/css; charset=utf-8")}
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       b"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = ((b"content-security-policy", CSP), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-cache"))


class StaticFile(NamedTuple):
    body: bytes
    content_type: bytes
    headers: tuple[tuple[bytes, bytes], ...] = HEADERS


def wants_html(scope) -> bool:
    """Whether the request's Accept header names text/html (browsers send it, curl does not)."""
    for name, value in scope.get("headers") or ():
        if name.lower() == b"accept" and b"text/html" in value.lower():
            return True
    return False


def dashboard_file(scope) -> StaticFile | None:
    """The dashboard file a GET request asks for, or None if it asks for something else."""
    path = scope["path"].rstrip("/") or "/"
    if path == "/" and wants_html(scope):
        path = "/dashboard"
    hit = FILES.get(path)
    if hit is None:
        return None
    name, content_type = hit
    return StaticFile((resources.files("rpc") / "dashboard" / name).read_bytes(), content_type)
