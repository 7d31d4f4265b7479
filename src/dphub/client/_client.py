"""The hub client: one object holding the server address, the token and a connection pool."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from dphub import __version__
from dphub.client._config import DEFAULT_SERVER, load_config
from dphub.client._get import download_files, remote_files, write_descriptor
from dphub.client._hashing import HashCache
from dphub.client._http import absolute, raise_for_status, same_origin
from dphub.client._loopback import LoopbackReceiver
from dphub.client._package import LocalPackage
from dphub.client._progress import ProgressCallback, Reporter
from dphub.client._push import PushResult, authorize, finalize, hash_files, upload_missing
from dphub.datapackage import Problem
from dphub.errors import DphubError, InvalidDescriptor, InvalidRequest, Unauthenticated
from dphub.names import check_name

FINDABILITIES = ("published", "unlisted", "private")
FINAL_STATES = ("SUCCEEDED", "FAILED")
_ANONYMOUS = httpx.Auth()
"""Sends no token: for calls that must not depend on a saved login."""


class _HubToken(httpx.Auth):
    """Sends the token to the hub only: never to object storage or any other host a URL names."""

    def __init__(self, server: str, token: str | None) -> None:
        self._server = server
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token and same_origin(str(request.url), self._server):
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class Client:
    """Talks to one hub. Thread-safe; close it (or use it as a context manager) when done."""

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        token: str | None = None,
        *,
        username: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.username = username
        self._http = httpx.Client(
            base_url=self.server,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            follow_redirects=True,
            headers={"User-Agent": f"dphub-client/{__version__}"},
        )
        self._set_auth()

    @classmethod
    def from_config(cls, *, server: str | None = None, timeout: float = 60.0) -> Client:
        """A client for ``server`` (or ``$DPHUB_SERVER``, or the saved one) with the saved login.

        The saved token is only used for the server it was issued by; ``$DPHUB_TOKEN`` overrides it.
        """
        config = load_config()
        chosen = (server or os.environ.get("DPHUB_SERVER") or config.server).rstrip("/")
        same = chosen == config.server.rstrip("/")
        token = os.environ.get("DPHUB_TOKEN") or (config.token if same else None)
        username = config.username if same else None
        return cls(chosen, token, username=username, timeout=timeout)

    def _set_auth(self) -> None:
        self._http.auth = _HubToken(self.server, self.token)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Auth

    def login(self, username: str, secret: str) -> str:
        """Exchange a password or API key for a token; the client uses it from then on."""
        who = "email" if "@" in username else "username"
        response = self._http.post("/api/auth/token", json={who: username, "secret": secret})
        raise_for_status(response)
        answer = _object(response)
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise DphubError("The hub's token answer holds no token.")
        self.token = token
        self._set_auth()
        named = answer.get("username")
        if isinstance(named, str) and named:
            self.username = named
        elif who == "username":
            self.username = username
        else:
            self.username = _profile_name(self.whoami())
        return token

    def whoami(self) -> dict[str, Any]:
        """The hub's ``/api/auth/check`` answer: ``{"authenticated", "profile"|"providers"}``."""
        response = self._http.get("/api/auth/check")
        raise_for_status(response)
        return _object(response)

    # Single sign-on and trusted publishing

    def sso_providers(self) -> dict[str, dict[str, Any]]:
        """The hub's single sign-on providers: name → ``{title, kind, url}`` (where a login
        starts)."""
        response = self._http.get("/api/auth/check", auth=_ANONYMOUS)
        raise_for_status(response)
        providers = _object(response).get("providers")
        if not isinstance(providers, dict):
            return {}
        return {k: v for k, v in providers.items() if isinstance(v, dict)}

    def browser_login(
        self, provider: str | None = None, *, show: Callable[[str], None], timeout: float = 300
    ) -> str:
        """Log in through a single sign-on provider in a browser; the client uses the token from
        then on. ``show`` is given the URL to open; the browser comes back to a one-shot server on
        127.0.0.1, and the one-time code it brings is exchanged for the token."""
        url = sso_login_url(self.sso_providers(), provider)
        with LoopbackReceiver() as receiver:
            show(f"{url}?{urlencode({'next': receiver.next_url})}")
            code = receiver.wait(timeout)
        if code is None:
            raise Unauthenticated(
                f"No login came back from the browser within {timeout / 60:g} minutes."
            )
        return self.redeem_login_code(code)

    def redeem_login_code(self, code: str) -> str:
        """Exchange the one-time code of a browser login for a token and use it."""
        response = self._http.post("/api/auth/oidc/redeem", json={"code": code}, auth=_ANONYMOUS)
        raise_for_status(response)
        return self._use_token(_object(response))

    def exchange_oidc_token(self, oidc_token: str, *, package: str | None = None) -> str:
        """Exchange a CI's OIDC token for a short-lived token that may push one package (trusted
        publishing) and use it."""
        body = {"token": oidc_token, **({"package": package} if package else {})}
        response = self._http.post("/api/auth/oidc/exchange", json=body, auth=_ANONYMOUS)
        raise_for_status(response)
        return self._use_token(_object(response))

    def _use_token(self, answer: dict[str, Any]) -> str:
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise DphubError("The hub's token answer holds no token.")
        self.token = token
        self._set_auth()
        named = answer.get("username")
        self.username = named if isinstance(named, str) and named else None
        return token

    def trusted_publishers(self, owner: str, name: str) -> list[dict[str, Any]]:
        """The CI issuers and subjects trusted to push ``owner/name``."""
        response = self._http.get(f"{_package_path(owner, name)}/trusted-publishers")
        raise_for_status(response)
        found = _object(response).get("trusted_publishers")
        return [t for t in found if isinstance(t, dict)] if isinstance(found, list) else []

    def add_trusted_publisher(
        self, owner: str, name: str, *, issuer: str, subject: str, audience: str | None = None
    ) -> dict[str, Any]:
        """Trust tokens of ``issuer`` whose subject matches ``subject`` to push ``owner/name``."""
        body = {"issuer": issuer, "subject": subject}
        if audience:
            body["audience"] = audience
        response = self._http.post(f"{_package_path(owner, name)}/trusted-publishers", json=body)
        raise_for_status(response)
        return _object(response)

    def remove_trusted_publisher(self, owner: str, name: str, trust_id: int) -> None:
        response = self._http.delete(
            f"{_package_path(owner, name)}/trusted-publishers/{int(trust_id)}"
        )
        raise_for_status(response)

    def _logged_in_name(self) -> str:
        check = self.whoami()
        if not check.get("authenticated"):
            raise Unauthenticated(f"{self.server} does not accept the saved token.")
        name = _profile_name(check)
        if name is None:
            raise InvalidRequest("The hub did not say who you are: give the owner to push to.")
        return name

    def create_api_key(
        self,
        *,
        name: str | None = None,
        scope: str | None = None,
        package: str | None = None,
        publisher: str | None = None,
        expires_in_days: int | None = None,
    ) -> dict[str, Any]:
        """A new API key of the logged-in user; its secret, ``key``, is in this answer only."""
        wanted = {
            "name": name,
            "scope": scope,
            "package": package,
            "publisher": publisher,
            "expires_in_days": expires_in_days,
        }
        body = {k: v for k, v in wanted.items() if v is not None}
        response = self._http.post("/api/auth/keys", json=body)
        raise_for_status(response)
        return _object(response)

    def api_keys(self) -> list[dict[str, Any]]:
        """The logged-in user's API keys (never their secrets), newest first."""
        response = self._http.get("/api/auth/keys")
        raise_for_status(response)
        keys = _object(response).get("keys")
        return [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []

    def revoke_api_key(self, key_id: int | str) -> dict[str, Any]:
        """Revoke one of the logged-in user's keys (and the tokens made with it)."""
        response = self._http.delete(f"/api/auth/keys/{quote(str(key_id), safe='')}")
        raise_for_status(response)
        return _object(response)

    # Publish

    def push(
        self,
        directory: Path | str,
        *,
        owner: str | None = None,
        findability: str | None = None,
        progress: ProgressCallback | None = None,
        workers: int = 4,
        hash_cache: HashCache | None = None,
    ) -> PushResult:
        """Publish the package in ``directory`` as a new revision of ``owner/<its name>``.

        Everything that can be checked locally is checked before the first request. Large files
        go in parts over ``workers`` connections; if a push is interrupted, running it again
        sends only the parts storage does not hold yet.
        """
        package = LocalPackage.load(directory)
        name = package.name
        if name is None:
            problem = Problem(
                "/name", '"name" is required to push: the hub files the package under it'
            )
            raise InvalidDescriptor(
                f"The package in {directory} has no name: add one to its datapackage.json.",
                problems=[problem.to_dict()],
            )
        if findability is not None and findability not in FINDABILITIES:
            raise InvalidRequest(f"findability must be one of {', '.join(FINDABILITIES)}.")
        if owner is not None:
            check_name(owner, what="owner")
        if not self.token:
            raise Unauthenticated(f"You are not logged in to {self.server}.")
        report = Reporter(progress)
        hashed = hash_files(
            package, cache=hash_cache or HashCache(), report=report, workers=workers
        )
        owner = owner or self.username or self._logged_in_name()
        answers = authorize(
            self._http, owner=owner, name=name, findability=findability, files=hashed
        )
        # A push interrupted here leaves nothing to clean up: the hub remembers unfinished large
        # files, so the same push run again sends only their missing parts.
        outcome = upload_missing(
            self._http,
            server=self.server,
            files=hashed,
            answers=answers,
            workers=workers,
            report=report,
        )
        answer = finalize(self._http, answers=answers)
        revision = answer.get("revision")
        url = answer.get("package_url") or f"{self.server}/{owner}/{name}"
        status_url = answer.get("status_url")
        return PushResult(
            owner=owner,
            name=name,
            revision=revision if isinstance(revision, int) else None,
            url=absolute(self.server, str(url)),
            status_url=absolute(self.server, status_url) if isinstance(status_url, str) else None,
            uploaded_files=tuple(outcome.uploaded),
            skipped_files=tuple(outcome.skipped),
            uploaded_bytes=outcome.sent_bytes,
            status=str(answer.get("status", "queued")),
            unchanged=answer.get("unchanged") is True,
            resumed_bytes=outcome.resumed_bytes,
        )

    def revision_status(
        self, owner: str, name: str, revision: int | str = "latest"
    ) -> dict[str, Any]:
        """``{state, pipelines, errors, stats, ...}`` of a revision (a number, ``latest`` or
        ``successful``)."""
        response = self._http.get(f"{_package_path(owner, name)}/revisions/{revision}")
        raise_for_status(response)
        return _object(response)

    def wait(
        self,
        owner: str,
        name: str,
        revision: int | str = "latest",
        *,
        timeout: float = 600.0,
        interval: float = 0.5,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll a revision until it is SUCCEEDED or FAILED (or ``timeout`` seconds pass);
        ``on_status`` sees every answer on the way."""
        deadline = time.monotonic() + timeout
        pause = min(0.2, interval)
        while True:
            status = self.revision_status(owner, name, revision)
            if on_status is not None:
                on_status(status)
            if status.get("state") in FINAL_STATES or time.monotonic() >= deadline:
                return status
            time.sleep(pause)
            pause = min(interval, pause * 2)

    # Datastore

    def search(
        self,
        resource_id: str,
        *,
        q: str | None = None,
        filters: dict[str, Any] | None = None,
        fields: list[str] | None = None,
        sort: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """One page of a datastore table: ``{fields, records, total, next, ...}``."""
        params: dict[str, Any] = {"resource_id": resource_id, "limit": limit, "offset": offset}
        if q:
            params["q"] = q
        if filters:
            params["filters"] = json.dumps(filters)
        if fields:
            params["fields"] = ",".join(fields)
        if sort:
            params["sort"] = sort
        response = self._http.get("/api/datastore/search", params=params)
        raise_for_status(response)
        return _object(response)

    def cat(
        self,
        owner: str,
        name: str,
        resource: str = "0",
        *,
        format: str = "csv",
        limit: int | None = None,
        revision: int | str | None = None,
    ) -> Iterator[bytes]:
        """A resource converted by the hub's DataProxy (json, ndjson or csv), as it streams in."""
        version = f"/v/{quote(str(revision), safe='')}" if revision is not None else ""
        url = f"/{quote(owner, safe='')}/{quote(name, safe='')}{version}/r/{quote(resource)}"
        params: dict[str, Any] = {"url": url, "format": format}
        if limit is not None:
            params["limit"] = limit
        with self._http.stream("GET", "/api/dataproxy", params=params) as response:
            if response.status_code >= 400:
                response.read()
                raise_for_status(response)
            yield from response.iter_bytes()

    def sql(self, statement: str) -> dict[str, Any]:
        """Run one read-only SELECT over datastore tables: ``{fields, records, truncated}``."""
        response = self._http.post("/api/datastore/sql", json={"sql": statement})
        raise_for_status(response)
        return _object(response)

    # Search

    def search_packages(
        self,
        q: str | None = None,
        *,
        owner: list[str] | None = None,
        license: list[str] | None = None,
        format: list[str] | None = None,
        keyword: list[str] | None = None,
        findability: list[str] | None = None,
        sort: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Packages the hub lists to this client: ``{items, total_count, facets}``; several values
        of one filter mean any of them."""
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("limit", limit),
            ("offset", offset),
        ]
        if q:
            params.append(("q", q))
        if sort:
            params.append(("sort", sort))
        for key, values in (
            ("owner", owner),
            ("license", license),
            ("format", format),
            ("keyword", keyword),
            ("findability", findability),
        ):
            params += [(key, value) for value in values or []]
        response = self._http.get("/api/search/package", params=params)
        raise_for_status(response)
        return _object(response)

    # Administration

    def audit(
        self,
        *,
        event: str | None = None,
        actor: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> dict[str, Any]:
        """A page of the audit log, newest first (site admins only): ``{events, next}``; pass
        ``next`` as ``before`` for the page after."""
        params: dict[str, Any] = {"limit": limit}
        if event:
            params["event"] = event
        if actor:
            params["actor"] = actor
        if before is not None:
            params["before"] = before
        response = self._http.get("/api/admin/audit", params=params)
        raise_for_status(response)
        return _object(response)

    # Publishers and access

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JSON call to the hub's API (``path`` already quoted); raises the hub's error."""
        response = self._http.request(method, path, json=body)
        raise_for_status(response)
        return _object(response)

    def set_findability(self, owner: str, name: str, findability: str) -> dict[str, Any]:
        return self.call("PATCH", _package_path(owner, name), {"findability": findability})

    # Events and webhooks

    def events(
        self,
        owner: str | None = None,
        name: str | None = None,
        *,
        kind: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> dict[str, Any]:
        """A page of events, newest first, of the hub, a publisher or one package:
        ``{events, next}``; pass ``next`` as ``before`` for the page after."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("owner", owner), ("package", name), ("kind", kind)):
            if value:
                params[key] = value
        if before is not None:
            params["before"] = before
        response = self._http.get("/api/events", params=params)
        raise_for_status(response)
        return _object(response)

    def webhooks(self, publisher: str) -> list[dict[str, Any]]:
        """A publisher's webhooks (never their secrets)."""
        response = self._http.get(_webhooks_path(publisher))
        raise_for_status(response)
        found = _object(response).get("webhooks")
        return [h for h in found if isinstance(h, dict)] if isinstance(found, list) else []

    def add_webhook(
        self, publisher: str, url: str, *, kinds: list[str] | None = None
    ) -> dict[str, Any]:
        """Register a webhook; the answer's ``secret`` signs its deliveries and is shown once."""
        body: dict[str, Any] = {"url": url}
        if kinds:
            body["kinds"] = kinds
        response = self._http.post(_webhooks_path(publisher), json=body)
        raise_for_status(response)
        return _object(response)

    def remove_webhook(self, publisher: str, webhook_id: int) -> None:
        response = self._http.delete(f"{_webhooks_path(publisher)}/{int(webhook_id)}")
        raise_for_status(response)

    def webhook_deliveries(
        self,
        publisher: str,
        webhook_id: int,
        *,
        state: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> dict[str, Any]:
        """A page of a webhook's delivery log, newest first: ``{deliveries, next}``."""
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        if before is not None:
            params["before"] = before
        response = self._http.get(
            f"{_webhooks_path(publisher)}/{int(webhook_id)}/deliveries", params=params
        )
        raise_for_status(response)
        return _object(response)

    # Read

    def info(self, owner: str, name: str, revision: int | str | None = None) -> dict[str, Any]:
        """The hub's package answer: descriptor, readme, revision, findability, files, ...
        ``revision`` is a number or a tag (default: the latest successful revision)."""
        params = {"revision": str(revision)} if revision is not None else None
        response = self._http.get(_package_path(owner, name), params=params)
        raise_for_status(response)
        return _object(response)

    def get(
        self,
        owner: str,
        name: str,
        dest: Path | str,
        *,
        revision: int | str | None = None,
        progress: ProgressCallback | None = None,
        workers: int = 4,
    ) -> Path:
        """Download a package into ``dest`` with its original layout; return ``dest``."""
        show = self.info(owner, name, revision)
        descriptor = show.get("descriptor")
        if not isinstance(descriptor, dict):
            raise DphubError("The hub's package answer holds no descriptor.")
        served = None
        if not isinstance(show.get("files"), list):
            served = self._served_descriptor(owner, name, revision)
        files = remote_files(show, served)
        target = Path(dest)
        target.mkdir(parents=True, exist_ok=True)
        download_files(
            self._http,
            server=self.server,
            files=files,
            dest=target,
            workers=workers,
            report=Reporter(progress),
        )
        write_descriptor(target, descriptor)
        return target

    def _served_descriptor(
        self, owner: str, name: str, revision: int | str | None
    ) -> dict[str, Any]:
        version = f"/v/{quote(str(revision), safe='')}" if revision is not None else ""
        path = f"/{quote(owner, safe='')}/{quote(name, safe='')}{version}/datapackage.json"
        response = self._http.get(path)
        raise_for_status(response)
        return _object(response)

    # History

    def tag(
        self,
        owner: str,
        name: str,
        tag: str,
        *,
        revision: int | str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Name a revision (default: the latest successful) ``tag``: ``{package, tag, revision}``.
        A tag that names another revision moves only with ``force`` (the owner role)."""
        body: dict[str, Any] = {"version": tag}
        if revision is not None:
            body["revision"] = revision
        if force:
            body["force"] = True
        response = self._http.post(f"{_package_path(owner, name)}/tag", json=body)
        raise_for_status(response)
        return _object(response)

    def tags(self, owner: str, name: str) -> list[dict[str, Any]]:
        """The package's tags, ``{tag, revision, created_at, created_by}``, newest revision first."""
        response = self._http.get(f"{_package_path(owner, name)}/tags")
        raise_for_status(response)
        found = _object(response).get("tags")
        return [t for t in found if isinstance(t, dict)] if isinstance(found, list) else []

    def diff(
        self,
        owner: str,
        name: str,
        *,
        from_ref: int | str | None = None,
        to_ref: int | str | None = None,
    ) -> dict[str, Any]:
        """What changed from one revision (or tag) to another: ``{from, to, files, descriptor,
        schemas, rows}``; by default, the latest revision against the one before."""
        params = {k: str(v) for k, v in (("from", from_ref), ("to", to_ref)) if v is not None}
        response = self._http.get(f"{_package_path(owner, name)}/diff", params=params)
        raise_for_status(response)
        return _object(response)


def sso_login_url(providers: dict[str, dict[str, Any]], provider: str | None) -> str:
    """Where a browser login with ``provider`` (the only one, when ``None``) starts."""
    if not providers:
        raise InvalidRequest(
            "This hub has no single sign-on provider: log in with a username and a password or"
            " API key (dphub login)."
        )
    names = ", ".join(sorted(providers))
    if provider is None:
        if len(providers) > 1:
            raise InvalidRequest(f"This hub has several sign-on providers ({names}): choose one.")
        provider = next(iter(providers))
    chosen = providers.get(provider)
    url = chosen.get("url") if chosen is not None else None
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"This hub has no sign-on provider {provider!r} (it has: {names}).")
    return url


def _package_path(owner: str, name: str) -> str:
    return f"/api/package/{quote(owner, safe='')}/{quote(name, safe='')}"


def _webhooks_path(publisher: str) -> str:
    return f"/api/publisher/{quote(publisher, safe='')}/webhooks"


def _object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DphubError(f"The hub answered {response.request.url.path} with no JSON object.")
    return body


def _profile_name(check: dict[str, Any]) -> str | None:
    profile = check.get("profile")
    if not isinstance(profile, dict):
        return None
    for key in ("username", "name"):
        value = profile.get(key)
        if isinstance(value, str) and value:
            return value
    return None
