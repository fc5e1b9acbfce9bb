"""A pytest plugin that runs the real distribution registry (Debian `docker-registry` 2.8) on loopback.

Fixtures (session-scoped, one registry process each):

- `registry`: anonymous, deletes enabled.
- `basic_registry`: htpasswd (bcrypt) Basic auth; `.username`/`.password`.
- `token_registry`: distribution token auth against `token_server`, a JWT issuer running in
  a thread of the test process (RS256, certificate in the registry's rootcertbundle).

Missing tools make the fixtures fail with a message, never skip. Everything listens on
127.0.0.1 only. Each registry's output goes to a log file whose tail is attached to the
report of any failing test that used it.

`push_layout` seeds a registry from an OCI layout directory with the store's own write
methods (blobs first, then child manifests, then the tagged top manifest), as BuildKit does.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from cachescope.core.model import mediatypes as mt
from cachescope.core.model.digest import Digest
from cachescope.core.model.oci import Descriptor, Index, parse_document
from cachescope.core.stores.base import CHUNK_BYTES
from cachescope.core.stores.registry import RegistryStore

REGISTRY_BIN_ENV = "CACHESCOPE_REGISTRY_BIN"
DEFAULT_BINARIES = ("/usr/bin/docker-registry", "docker-registry", "registry")
READY_TIMEOUT = 20.0
TOKEN_SERVICE = "cachescope-test-registry"
TOKEN_ISSUER = "cachescope-test-issuer"
TEST_USER = "cachescope"
TEST_PASSWORD = "s3cret-test-password"
_REGISTRY_FIXTURES = ("registry", "basic_registry", "token_registry")


# -- registry process ------------------------------------------------------------------------


@dataclass
class RunningRegistry:
    """A registry process listening on 127.0.0.1:PORT over plain HTTP."""

    host: str
    root: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def registry_binary() -> Path:
    """The registry executable: $CACHESCOPE_REGISTRY_BIN, else Debian's docker-registry."""
    configured = os.environ.get(REGISTRY_BIN_ENV)
    candidates = (configured,) if configured else DEFAULT_BINARIES
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return Path(found)
    pytest.fail(
        f"the distribution registry binary was not found (looked for {', '.join(candidates)}); "
        f"install Debian's docker-registry package (apt-get install docker-registry) "
        f"or set {REGISTRY_BIN_ENV} to a registry 2.x binary",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(reg: RunningRegistry) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last_error = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if reg.process.poll() is not None:
                pytest.fail(
                    f"registry exited with status {reg.process.returncode} before it was ready:\n{reg.log_tail()}",
                    pytrace=False,
                )
            try:
                response = client.get(f"{reg.url}/v2/")
            except httpx.TransportError as exc:
                last_error = str(exc) or type(exc).__name__
            else:
                if response.status_code in {200, 401}:
                    return
                last_error = f"status {response.status_code}"
            time.sleep(0.1)
    pytest.fail(f"registry on {reg.host} not ready after {READY_TIMEOUT:g}s ({last_error}):\n{reg.log_tail()}")


@contextlib.contextmanager
def run_registry(workdir: Path, auth: dict[str, Any] | None = None) -> Iterator[RunningRegistry]:
    """Start a registry with filesystem storage under `workdir`, wait until it answers, stop it after."""
    binary = registry_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if auth:
        config["auth"] = auth
    # JSON is YAML: no YAML writer needed.
    config_path = workdir / "config.yml"
    config_path.write_text(json.dumps(config, indent=1))
    log_path = workdir / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
    reg = RunningRegistry(f"127.0.0.1:{port}", workdir, log_path, process)
    try:
        _wait_ready(reg)
        yield reg
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd entry (distribution accepts bcrypt only): `htpasswd -Bbn`, else the bcrypt package."""
    tool = shutil.which("htpasswd")
    if tool:
        result = subprocess.run(
            [tool, "-Bbn", username, password], capture_output=True, check=True, text=True, timeout=30
        )
        return result.stdout.strip()
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError:
        pytest.fail(
            "cannot make a bcrypt htpasswd entry: neither `htpasswd` (Debian apache2-utils) "
            "nor the Python bcrypt package is installed",
            pytrace=False,
        )
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return f"{username}:{hashed}"


# -- token server ------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenRequest:
    method: str
    user: str | None
    service: str | None
    scopes: list[str]
    status: int


@dataclass
class TokenServer:
    """A distribution token issuer: checks Basic credentials, grants what is asked, signs RS256 JWTs.

    Anonymous callers get a token with no access, so the registry then refuses them.
    """

    username: str
    password: str
    cert_path: Path
    requests: list[TokenRequest] = field(default_factory=list)
    lifetime: int = 300
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _key: Any = None
    _cert_der: bytes = b""

    @property
    def realm(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/token"

    def start(self) -> None:
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
            from cryptography.x509.oid import NameOID
        except ImportError:
            pytest.fail("the token registry fixture needs the Python cryptography package", pytrace=False)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cachescope test token issuer")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _token_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def issue(self, user: str | None, service: str | None, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        if user is not None:
            for scope in scopes:
                kind, _, rest = scope.partition(":")
                resource, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": resource, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self._cert_der).decode("ascii")]}
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": user or "",
            "aud": service or "",
            "exp": now + self.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


def _token_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test output is not the place for access logs."""

        def _reply(
            self, status: int, body: dict[str, Any], user: str | None, service: str | None, scopes: list[str]
        ) -> None:
            server.requests.append(TokenRequest(self.command, user, service, scopes, status))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, user: str | None, password: str | None, service: str | None, scopes: list[str]) -> None:
            if user is not None and (user != server.username or password != server.password):
                self._reply(401, {"details": "invalid credentials"}, user, service, scopes)
                return
            token = server.issue(user, service, scopes)
            body = {"token": token, "access_token": token, "expires_in": server.lifetime}
            self._reply(200, body, user, service, scopes)

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            user = password = None
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            service = next(iter(query.get("service", [])), None)
            scopes = [s for value in query.get("scope", []) for s in value.split()]
            self._answer(user, password, service, scopes)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            service = next(iter(form.get("service", [])), None)
            scopes = [s for value in form.get("scope", []) for s in value.split()]
            if (form.get("grant_type") or [""])[0] != "password":
                self._reply(400, {"details": "unsupported grant_type"}, None, service, scopes)
                return
            self._answer((form.get("username") or [""])[0], (form.get("password") or [""])[0], service, scopes)

    return Handler


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """An anonymous registry with deletes enabled."""
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A registry behind htpasswd Basic auth (user TEST_USER, password TEST_PASSWORD)."""
    workdir = tmp_path_factory.mktemp("basic-registry")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(htpasswd_line(TEST_USER, TEST_PASSWORD) + "\n")
    auth = {"htpasswd": {"realm": "cachescope-test", "path": str(htpasswd)}}
    with run_registry(workdir, auth) as reg:
        reg.username, reg.password = TEST_USER, TEST_PASSWORD
        yield reg


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    """The JWT issuer the token registry trusts; `.requests` records every token request."""
    server = TokenServer(TEST_USER, TEST_PASSWORD, tmp_path_factory.mktemp("token") / "root.pem")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer) -> Iterator[RunningRegistry]:
    """A registry with distribution token auth against `token_server`."""
    auth = {
        "token": {
            "realm": token_server.realm,
            "service": TOKEN_SERVICE,
            "issuer": TOKEN_ISSUER,
            "rootcertbundle": str(token_server.cert_path),
        }
    }
    with run_registry(tmp_path_factory.mktemp("token-registry"), auth) as reg:
        reg.username, reg.password = TEST_USER, TEST_PASSWORD
        reg.token_server = token_server
        yield reg


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A repository name unique to the test, so tests sharing a session registry never collide."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60] or "test"
    return f"cachescope-test/{base}-{secrets.token_hex(3)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the registry log tail to failing tests that used a registry."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for name in _REGISTRY_FIXTURES:
            reg = funcargs.get(name)
            if isinstance(reg, RunningRegistry):
                report.sections.append((f"{name} log ({reg.log_path})", reg.log_tail()))
    return report


# -- seeding -------------------------------------------------------------------------------------


async def iter_file(path: Path, chunk_size: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
    """A file as async chunks (the shape write_blob takes)."""
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def _blob_path(layout_dir: Path, digest: Digest) -> Path:
    return layout_dir / "blobs" / digest.algorithm / digest.hex


async def push_document(layout_dir: Path, store: RegistryStore, desc: Descriptor, tag: str | None = None) -> Descriptor:
    """Push the manifest `desc` names from a layout, after everything it references; by digest unless `tag`."""
    raw = _blob_path(layout_dir, desc.digest).read_bytes()
    document = parse_document(raw, desc.media_type or None)
    children = document.manifests if isinstance(document, Index) else (document.config, *document.layers)
    for child in children:
        if child.media_type in mt.MANIFEST_TYPES:
            await push_document(layout_dir, store, child, None)
        else:
            await store.write_blob(iter_file(_blob_path(layout_dir, child.digest)), expected=child)
    return await store.put_manifest(raw, document.media_type, tag=tag)


async def push_layout(
    layout_dir: Path, store: RegistryStore, tag: str, *, manifest_digest: Digest | str | None = None
) -> Descriptor:
    """Push one manifest of an OCI layout (and everything it references) to `store` under `tag`.

    Without `manifest_digest`, the `index.json` entry named `tag` is pushed, else its only
    (or first) entry. Blobs go first, then child manifests by digest, the tag last.
    """
    index = json.loads((layout_dir / "index.json").read_text())
    entries = index.get("manifests") or []
    if manifest_digest is not None:
        wanted = [e for e in entries if e["digest"] == str(manifest_digest)]
    else:
        wanted = [e for e in entries if (e.get("annotations") or {}).get(mt.ANNOTATION_REF_NAME) == tag] or entries
    if not wanted:
        raise LookupError(f"{layout_dir}/index.json has no manifest {manifest_digest or tag}")
    entry = wanted[0]
    desc = Descriptor(entry.get("mediaType", ""), Digest.parse(entry["digest"]), int(entry["size"]))
    return await push_document(layout_dir, store, desc, tag)
