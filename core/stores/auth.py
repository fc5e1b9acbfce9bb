"""Registry credentials and the distribution auth handshake.

Credentials come from the caller or, lazily and only when a registry asks for them, from
Docker's `config.json`: `credHelpers`, then `credsStore`, then `auths`. The handshake is
an `httpx.Auth` flow: anonymous first; on 401 the `WWW-Authenticate` challenge picks Basic
or a Bearer token from the realm it names (GET with Basic credentials, POST fallback like
BuildKit/containerd; an identity token is exchanged by POST). Tokens are cached per scope
until shortly before they expire.

Secrets never leave the registry host and its token realm: requests to any other host
(redirects to blob storage, cross-host upload URLs) go out without `Authorization`, and the
repr of a `Credentials` hides them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.request import parse_http_list, parse_keqv_list

import httpx

from cachescope.core.errors import AuthError, RegistryError
from cachescope.core.model.reference import DOCKER_HUB, DOCKER_HUB_API, is_loopback_host

DOCKER_HUB_CONFIG_KEY: Final = "https://index.docker.io/v1/"
"""The key Docker uses for Docker Hub in `auths` and the server URL it gives helpers."""

HELPER_TIMEOUT: Final = 30.0
MAX_TOKEN_RESPONSE: Final = 1024 * 1024
MIN_TOKEN_LIFETIME: Final = 60
"""The token spec's default and minimum `expires_in`."""
TOKEN_EXPIRY_MARGIN: Final = 10.0

_HUB_NAMES: Final = frozenset({DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"})
_HELPER_NOT_FOUND: Final = "credentials not found"
_TOKEN_USERNAME: Final = "<token>"  # noqa: S105 - the helper protocol's marker, not a secret
_TOKEN_CLIENT_ID: Final = "cachescope"  # noqa: S105 - OAuth2 client_id, not a secret


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username/password pair or an identity (refresh) token; empty means anonymous."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        secret = "***" if self.password or self.identity_token else "''"
        return f"Credentials(username={self.username!r}, secret={secret})"

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token)

    @property
    def can_basic(self) -> bool:
        return bool(self.username and self.password)

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


ANONYMOUS: Final = Credentials()


def docker_config_path() -> Path:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, as the docker CLI looks."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def config_key(host: str) -> str:
    """The server address Docker files credentials under for a registry host."""
    return DOCKER_HUB_CONFIG_KEY if host in _HUB_NAMES else host


def _normalise_server(key: str) -> str:
    """`https://host:port/v2/` and friends reduced to `host:port`, like docker's ConvertToHostname."""
    name = key
    for prefix in ("http://", "https://"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    name = name.split("/", 1)[0]
    return DOCKER_HUB if name in _HUB_NAMES else name


def _read_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise AuthError(f"cannot read docker config {path}: {exc.strerror or exc}") from exc
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise AuthError(f"docker config {path} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise AuthError(f"docker config {path} is not a JSON object")
    return value


def _credentials_from_auth_entry(entry: Any, path: Path, key: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    username = entry.get("username") or ""
    password = entry.get("password") or ""
    encoded = entry.get("auth") or ""
    if encoded and isinstance(encoded, str):
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except ValueError as exc:
            raise AuthError(f"docker config {path}: the auth entry for {key} is not base64") from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthError(f"docker config {path}: the auth entry for {key} is not user:password")
    identity = entry.get("identitytoken") or ""
    if not all(isinstance(v, str) for v in (username, password, identity)):
        raise AuthError(f"docker config {path}: the auth entry for {key} has non-string fields")
    creds = Credentials(username, password, identity)
    return creds or None


async def run_credential_helper(
    name: str,
    server_url: str,
    *,
    timeout: float = HELPER_TIMEOUT,  # noqa: ASYNC109 - bounds a subprocess
) -> Credentials | None:
    """Ask `docker-credential-NAME get`; None when it has nothing for the server."""
    program = f"docker-credential-{name}"
    hint = f"install {program} or fix credHelpers/credsStore in {docker_config_path()}"
    try:
        proc = await asyncio.create_subprocess_exec(
            program,
            "get",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise AuthError(f"credential helper {program} cannot run: {exc.strerror or exc}", hint=hint) from exc
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(server_url.encode()), timeout)
    except TimeoutError as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise AuthError(f"credential helper {program} did not answer within {timeout:g}s", hint=hint) from exc
    if proc.returncode != 0:
        message = (stdout or stderr).decode("utf-8", "replace").strip()
        if _HELPER_NOT_FOUND in message.lower():
            return None
        first_line = message.splitlines()[0][:200] if message else f"exit status {proc.returncode}"
        raise AuthError(f"credential helper {program} failed for {server_url}: {first_line}", hint=hint)
    try:
        reply = json.loads(stdout)
        username = reply.get("Username") or ""
        secret = reply.get("Secret") or ""
    except (ValueError, AttributeError) as exc:
        raise AuthError(f"credential helper {program} printed something that is not its JSON reply") from exc
    if not isinstance(username, str) or not isinstance(secret, str):
        raise AuthError(f"credential helper {program} returned non-string fields")
    if username == _TOKEN_USERNAME:
        return Credentials(identity_token=secret) if secret else None
    creds = Credentials(username, secret)
    return creds or None


async def load_credentials(
    host: str, *, config_path: Path | None = None, helper_timeout: float = HELPER_TIMEOUT
) -> Credentials | None:
    """What `docker login` stored for a registry host, or None.

    Order as the docker CLI: a per-host `credHelpers` entry, else `credsStore`; when the
    helper has nothing, a plain `auths` entry still counts.
    """
    path = config_path or docker_config_path()
    config = await asyncio.to_thread(_read_config, path)
    key = config_key(host)
    wanted = _normalise_server(key)
    helpers = config.get("credHelpers") or {}
    helper = helpers.get(host) or helpers.get(key) if isinstance(helpers, dict) else None
    if not helper:
        store = config.get("credsStore")
        helper = store if isinstance(store, str) else None
    if helper:
        creds = await run_credential_helper(helper, key, timeout=helper_timeout)
        if creds:
            return creds
    auths = config.get("auths") or {}
    if not isinstance(auths, dict):
        raise AuthError(f"docker config {path}: 'auths' is not an object")
    if key in auths:
        return _credentials_from_auth_entry(auths[key], path, key)
    for entry_key, entry in auths.items():
        if _normalise_server(entry_key) == wanted:
            return _credentials_from_auth_entry(entry, path, entry_key)
    return None


@dataclass(frozen=True, slots=True)
class Challenge:
    """One `WWW-Authenticate` challenge: scheme (lowercase) and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_www_authenticate(values: Iterable[str]) -> list[Challenge]:
    """Parse `Bearer realm="…",service="…",scope="…"` and `Basic realm="…"` headers.

    One challenge per header value, as registries send them; AuthError if none parses.
    """
    challenges: list[Challenge] = []
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        if not scheme:
            continue
        try:
            params = parse_keqv_list(parse_http_list(rest)) if rest.strip() else {}
        except ValueError as exc:
            raise AuthError(f"malformed WWW-Authenticate header {value[:120]!r}") from exc
        challenges.append(Challenge(scheme.lower(), {k.lower(): v for k, v in params.items()}))
    return challenges


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class AuthSession:
    """Auth state for one registry host: credentials (looked up once), scheme, tokens per scope."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        config_path: Path | None = None,
        helper_timeout: float = HELPER_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self._credentials = credentials
        self._loaded = credentials is not None
        self._config_path = config_path
        self._helper_timeout = helper_timeout
        self._clock = clock
        self._basic = False
        self._tokens: dict[frozenset[str], _Token] = {}

    def __repr__(self) -> str:
        return f"AuthSession(host={self.host!r}, credentials={self._credentials!r})"

    async def credentials(self) -> Credentials | None:
        """The credentials for this host; the docker config is read on first need only."""
        if not self._loaded:
            self._credentials = await load_credentials(
                self.host, config_path=self._config_path, helper_timeout=self._helper_timeout
            )
            self._loaded = True
        return self._credentials or None

    @property
    def username(self) -> str | None:
        """Who we authenticated as, if credentials were looked up and found (for messages)."""
        creds = self._credentials
        if not creds:
            return None
        return creds.username or "<identity token>"

    def for_scopes(self, *scopes: str) -> httpx.Auth:
        """An httpx auth for one request needing `scopes` (e.g. `repository:a/b:pull`)."""
        return _ScopedAuth(self, frozenset(scopes))

    def refusal(self, status: int, subject: str, detail: str) -> AuthError:
        """The AuthError for a 401/403 the registry gave us after the handshake."""
        who = self.username
        login = f"run docker login {self.host}"
        if status == 403:
            hint = f"the account {who} lacks access; check its permissions" if who else login
            return AuthError(f"{self.host} denied access to {subject} ({detail})", hint=hint)
        if who:
            return AuthError(f"{self.host} refused the credentials of {who} for {subject} ({detail})", hint=login)
        return AuthError(f"{self.host} requires authentication for {subject} ({detail})", hint=login)

    def owns(self, url: httpx.URL) -> bool:
        """True for URLs on this registry host: only those get our credentials."""
        return url.netloc.decode("ascii").lower() == self.host.lower()

    def cached_header(self, scopes: frozenset[str]) -> str | None:
        token = self._tokens.get(scopes)
        if token is not None:
            if token.expires_at > self._clock():
                return f"Bearer {token.value}"
            del self._tokens[scopes]
        if self._basic and self._credentials and self._credentials.can_basic:
            return self._credentials.basic_header()
        return None

    def forget(self, scopes: frozenset[str]) -> None:
        self._tokens.pop(scopes, None)

    def basic_header(self, creds: Credentials | None) -> str:
        if creds is None or not creds.can_basic:
            raise AuthError(
                f"{self.host} requires a username and password",
                hint=f"run docker login {self.host}",
            )
        self._basic = True
        return creds.basic_header()

    def token_request(
        self, challenge: Challenge, scopes: frozenset[str], creds: Credentials | None, *, post: bool
    ) -> httpx.Request:
        """The token request BuildKit would send: GET with Basic, or an OAuth2 POST form."""
        realm = challenge.params.get("realm", "")
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL as exc:
            raise AuthError(f"{self.host} named an invalid token realm {realm[:120]!r}") from exc
        if url.scheme not in {"http", "https"} or not url.host:
            raise AuthError(f"{self.host} named an unusable token realm {realm[:120]!r}")
        if creds and url.scheme == "http" and not is_loopback_host(url.netloc.decode("ascii")):
            raise AuthError(f"refusing to send credentials to the plain-HTTP token realm {url.host}")
        wanted = sorted(scopes | set(challenge.params.get("scope", "").split()))
        service = challenge.params.get("service")
        if post:
            form: dict[str, Any] = {"client_id": _TOKEN_CLIENT_ID, "scope": " ".join(wanted)}
            if service:
                form["service"] = service
            if creds and creds.identity_token:
                form |= {"grant_type": "refresh_token", "refresh_token": creds.identity_token}
            elif creds:
                form |= {"grant_type": "password", "username": creds.username, "password": creds.password}
            return httpx.Request("POST", url, data=form)
        params: list[tuple[str, str | int | float | bool | None]] = [("service", service)] if service else []
        params += [("scope", scope) for scope in wanted]
        headers = {"Authorization": creds.basic_header()} if creds and creds.can_basic else {}
        return httpx.Request("GET", url.copy_merge_params(params), headers=headers)

    def store_token(self, scopes: frozenset[str], response: httpx.Response, body: bytes) -> str:
        """Check a token endpoint's reply, cache the token for `scopes`, and return it."""
        where = response.request.url.host
        status = response.status_code
        if status in {401, 403}:
            who = f" for {self.username}" if self.username else ""
            raise AuthError(
                f"token server {where} refused access{who} ({status})", hint=f"run docker login {self.host}"
            )
        if status >= 500 or status == 429:
            raise RegistryError(f"token server {where} failed with status {status}", status=status)
        if status != 200:
            raise AuthError(f"token server {where} answered {status}")
        try:
            reply = json.loads(body)
            value = reply.get("token") or reply.get("access_token")
            lifetime = reply.get("expires_in") or MIN_TOKEN_LIFETIME
        except (ValueError, AttributeError) as exc:
            raise AuthError(f"token server {where} sent a reply that is not token JSON") from exc
        if not isinstance(value, str) or not value:
            raise AuthError(f"token server {where} sent no token")
        if not isinstance(lifetime, int | float) or lifetime < MIN_TOKEN_LIFETIME:
            lifetime = MIN_TOKEN_LIFETIME
        self._tokens[scopes] = _Token(value, self._clock() + float(lifetime) - TOKEN_EXPIRY_MARGIN)
        return value


async def _read_small(response: httpx.Response) -> bytes:
    """A token endpoint's body, refused by Content-Length when it is not the small JSON it should be.

    Read with `aread` because httpx re-reads the responses of an auth flow itself.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_TOKEN_RESPONSE:
        raise AuthError(f"token server {response.request.url.host} sent {declared} bytes; expected a small JSON reply")
    return await response.aread()


class _ScopedAuth(httpx.Auth):
    """One request's handshake: cached token or Basic first, one challenge answered, no loops."""

    def __init__(self, session: AuthSession, scopes: frozenset[str]) -> None:
        self._session = session
        self._scopes = scopes

    def sync_auth_flow(
        self,
        request: httpx.Request,  # noqa: ARG002 - httpx's signature
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("cachescope's registry auth is async only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        session = self._session
        if not session.owns(request.url):
            # Upload URLs on other hosts: never send our credentials there.
            yield request
            return
        sent = session.cached_header(self._scopes)
        if sent:
            request.headers["Authorization"] = sent
        response = yield request
        # A 401 from a host we were redirected to is that host's business, not a challenge for us.
        if response.status_code != 401 or not session.owns(response.request.url):
            return
        challenges = parse_www_authenticate(response.headers.get_list("www-authenticate"))
        by_scheme = {c.scheme: c for c in challenges}
        if sent:
            session.forget(self._scopes)
        creds = await session.credentials()
        if "bearer" in by_scheme:
            challenge = by_scheme["bearer"]
            if not challenge.params.get("realm"):
                raise AuthError(f"{session.host} sent a Bearer challenge without a realm")
            post = bool(creds and creds.identity_token)
            token_response = yield session.token_request(challenge, self._scopes, creds, post=post)
            body = await _read_small(token_response)
            if not post and creds and creds.username and token_response.status_code in {401, 404, 405}:
                token_response = yield session.token_request(challenge, self._scopes, creds, post=True)
                body = await _read_small(token_response)
            token = session.store_token(self._scopes, token_response, body)
            request.headers["Authorization"] = f"Bearer {token}"
        elif "basic" in by_scheme:
            request.headers["Authorization"] = session.basic_header(creds)
        else:
            shown = ", ".join(response.headers.get_list("www-authenticate"))[:120] or "none"
            raise AuthError(f"{session.host} sent 401 with an unsupported WWW-Authenticate challenge ({shown!r})")
        yield request
