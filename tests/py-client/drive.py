"""Drive the real py-oidc-auth-client against an oidc-auth test server.

Run by ``tests/py_client.rs``; one scenario per run, one JSON object on stdout::

    drive.py login   --host http://127.0.0.1:PORT/api --protected http://127.0.0.1:PORT/me
                     [--seed-token JSON] [--timeout SECONDS]
    drive.py refresh --host ... --protected ... --refresh-token TOKEN

``login`` calls ``py_oidc_auth_client.authenticate`` exactly as an application does. The client
itself picks the flow: the token it has stored (``--seed-token``, whose access token is marked
expired so that the client must refresh), else the device flow, else (on a 503 from the device
route) the browser flow. ``refresh`` calls ``DeviceFlow.refresh`` alone, to see the error the
client reports for a refresh token the server refuses.

Nothing of the client is changed, only observed or stood in for:

* the token store is a file in a fresh temporary directory, never the user's cache;
* ``webbrowser.open`` is replaced by a stand-in browser: it records every URL the client opens,
  and follows the login URL of the browser flow with httpx (our ``/login`` 302, the provider's
  ``/authorize`` 302, the client's own loopback listener) as a user's browser would;
* ``httpx.AsyncClient``, which the client builds its session from, is wrapped to record every
  exchange (method, path, form field names, seconds since the start, status, top-level
  ``error``) without altering it.

Only loopback URLs are ever requested; anything else is an error.

The JSON result: ``ok``; ``token`` (what the client returned) or ``error`` (the client's
``AuthError``: message, status_code, detail); ``protected`` (status and body of a GET of
``--protected`` with the ``headers`` the client returned); ``exchanges``; ``browser`` (the URLs
opened and, for the login URL, the hops followed); ``stored`` (whether the store holds a token
for the host afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
import urllib.parse
import webbrowser
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx

import py_oidc_auth_client
from py_oidc_auth_client import AuthError, DeviceFlow, Token, TokenStore, authenticate

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
MAX_BROWSER_HOPS = 10

# When the driver started, for the `t` (seconds since then) of each exchange.
START = time.monotonic()
# Every HTTP exchange the client makes, in order.
EXCHANGES: List[Dict[str, Any]] = []
# Every URL the client opens in the browser, with the hops the stand-in browser followed.
BROWSER: List[Dict[str, Any]] = []


def require_loopback(url: str) -> None:
    """Refuse any URL that is not on loopback: the tests use no other network."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise RuntimeError(f"refusing a non-loopback URL: {url}")


def form_fields(request: httpx.Request) -> List[str]:
    """The names of the form fields of an url-encoded request body, in order."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return []
    body = request.content.decode("utf-8", "replace")
    return [name for name, _ in urllib.parse.parse_qsl(body, keep_blank_values=True)]


async def record_request(request: httpx.Request) -> None:
    """httpx request hook: only loopback, and note the request."""
    require_loopback(str(request.url))
    EXCHANGES.append(
        {
            "method": request.method,
            "path": request.url.path,
            "form": form_fields(request),
            "t": round(time.monotonic() - START, 3),
        }
    )


async def record_response(response: httpx.Response) -> None:
    """httpx response hook: complete the latest exchange with the answer."""
    await response.aread()
    entry = EXCHANGES[-1] if EXCHANGES else {}
    entry["status"] = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        entry["error"] = body.get("error")
        entry["keys"] = sorted(body)
        if "interval" in body:
            entry["interval"] = body["interval"]


class RecordingAsyncClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` built with the client's own arguments plus the recording hooks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        hooks = kwargs.setdefault("event_hooks", {})
        hooks.setdefault("request", []).append(record_request)
        hooks.setdefault("response", []).append(record_response)
        super().__init__(*args, **kwargs)


def follow(url: str) -> List[Dict[str, Any]]:
    """Follow redirects from `url` as a browser would; returns each hop (status, URL without
    query, query parameter names)."""
    hops: List[Dict[str, Any]] = []
    with httpx.Client(follow_redirects=False, timeout=10, trust_env=False) as browser:
        current = url
        for _ in range(MAX_BROWSER_HOPS):
            require_loopback(current)
            response = browser.get(current)
            parts = urllib.parse.urlsplit(current)
            hops.append(
                {
                    "status": response.status_code,
                    "url": urllib.parse.urlunsplit(parts._replace(query="", fragment="")),
                    "query": [k for k, _ in urllib.parse.parse_qsl(parts.query)],
                }
            )
            if not response.is_redirect:
                break
            current = urllib.parse.urljoin(current, response.headers["location"])
    return hops


def stand_in_browser(login_prefix: str):
    """A `webbrowser.open` replacement: records the URL; follows it when it is our login URL
    (the browser flow), and only records it otherwise (the device flow's verification URL, which
    the Rust side approves at the mock provider)."""

    def open_url(url: str, *_args: Any, **_kwargs: Any) -> bool:
        entry: Dict[str, Any] = {"url": url.split("?", 1)[0]}
        BROWSER.append(entry)
        if url.startswith(login_prefix):
            entry["hops"] = follow(url)
        return True

    return open_url


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 now, for the client's callback listener (so that tests running
    in parallel never contend for the default 53100-53105)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(store: TokenStore, host: str, answer: Dict[str, Any]) -> None:
    """Store the server's token answer as the client stores tokens, with the access token
    expired (by the client's clock) and the refresh token still valid."""
    access = answer["access_token"]
    token_type = answer.get("token_type", "Bearer")
    store.put(
        host,
        Token(
            access_token=access,
            token_type=token_type,
            expires=int(time.time()) - 120,
            refresh_token=answer.get("refresh_token", ""),
            refresh_expires=int(answer["refresh_expires"]),
            scope=answer.get("scope", ""),
            headers={"Authorization": f"{token_type} {access}"},
        ),
    )


def call_protected(url: str, token: Token) -> Dict[str, Any]:
    """GET `url` with the headers the client returned."""
    require_loopback(url)
    response = httpx.get(url, headers=token["headers"], timeout=10, trust_env=False)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:300]
    return {"status": response.status_code, "body": body}


def auth_error(error: AuthError) -> Dict[str, Any]:
    """The client's error as JSON."""
    return {
        "message": error.message,
        "status_code": error.status_code,
        "detail": error.detail,
    }


def run(args: argparse.Namespace, store: TokenStore) -> Dict[str, Any]:
    """Runs one scenario; the JSON result without `exchanges` and `browser`."""
    result: Dict[str, Any] = {"client_version": py_oidc_auth_client.__version__}
    try:
        if args.scenario == "login":
            if args.seed_token:
                seed(store, args.host, json.loads(args.seed_token))
            token = authenticate(
                host=args.host,
                store=store,
                redirect_ports=[free_loopback_port()],
                timeout=args.timeout,
            )
        else:
            flow = DeviceFlow(args.host, store=store, timeout=args.timeout)
            token = asyncio.run(flow.refresh(args.refresh_token))
    except AuthError as error:
        result.update(ok=False, error=auth_error(error))
    else:
        result.update(ok=True, token=dict(token), protected=call_protected(args.protected, token))
    result["stored"] = store.get(args.host) is not None
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenario",
        choices=["login", "refresh"],
        help="login: authenticate(); refresh: DeviceFlow.refresh(--refresh-token)",
    )
    parser.add_argument("--host", required=True, help="the server URL the auth routes are under")
    parser.add_argument("--protected", required=True, help="a protected route to call")
    parser.add_argument("--seed-token", help="login: a token answer of the server to store first")
    parser.add_argument("--refresh-token", default="", help="refresh: the refresh token to send")
    parser.add_argument("--timeout", type=int, default=30, help="the client's timeout, seconds")
    args = parser.parse_args(argv)
    for url in (args.host, args.protected):
        require_loopback(url)

    httpx.AsyncClient = RecordingAsyncClient  # type: ignore[misc]
    login_prefix = args.host.rstrip("/") + "/auth/v2/login"
    webbrowser.open = stand_in_browser(login_prefix)  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="py-oidc-auth-client-") as tmp:
        store = TokenStore(Path(tmp) / "token-store.json")
        result = run(args, store)
    result["exchanges"] = EXCHANGES
    result["browser"] = BROWSER
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
