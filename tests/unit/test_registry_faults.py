"""Faults a real registry will not produce on demand, injected with httpx.MockTransport.

Everything else (normal reads, writes, auth) is tested against the real registry in
tests/integration/test_registry_store.py.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from cachescope.core.errors import (
    AuthError,
    DigestMismatch,
    FormatError,
    NetworkError,
    NotFound,
    RegistryError,
    SizeMismatch,
    TooLarge,
)
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.digest import sha256_of
from cachescope.core.model.oci import Descriptor
from cachescope.core.model.reference import RegistryHost
from cachescope.core.stores.auth import Credentials, parse_www_authenticate
from cachescope.core.stores.base import CHUNK_BYTES, MAX_MANIFEST_BYTES, THREADED_IO_BYTES
from cachescope.core.stores.registry import MONOLITHIC_MAX_BYTES, RegistryClient, RegistryStore

HOST = "registry.test"
REPO = "team/cache"
BLOB_PATH = f"/v2/{REPO}/blobs/"
MANIFEST_PATH = f"/v2/{REPO}/manifests/"
ANONYMOUS = Credentials()
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.BUILDKIT_CACHE_CONFIG, "digest": str(sha256_of(b"{}")), "size": 2},
        "layers": [],
    }
).encode()

Handler = Callable[[httpx.Request], httpx.Response]


class Sleeps:
    """Injected instead of asyncio.sleep: records the delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make_store(
    handler: Handler, *, credentials: Credentials | None = ANONYMOUS, retries: int = 4
) -> tuple[RegistryStore, Sleeps]:
    sleeps = Sleeps()
    client = RegistryClient(
        RegistryHost(HOST),
        transport=httpx.MockTransport(handler),
        credentials=credentials,
        retries=retries,
        sleep=sleeps,
    )
    return RegistryStore(client, REPO, owns_client=True), sleeps


def blob_desc(data: bytes) -> Descriptor:
    return Descriptor(mt.OCI_LAYER_GZIP, sha256_of(data), len(data))


async def read_all(store: RegistryStore, desc: Descriptor) -> bytes:
    async with store.open_blob(desc) as stream:
        return b"".join([chunk async for chunk in stream])


class DroppingStream(httpx.AsyncByteStream):
    """Sends `data` and then breaks the connection, as a reset socket would."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data
        raise httpx.ReadError("connection reset by peer")


class Chunks(httpx.AsyncByteStream):
    """A body with no Content-Length, sent in pieces."""

    def __init__(self, data: bytes, size: int = 64 * 1024) -> None:
        self.data = data
        self.size = size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.size):
            yield self.data[start : start + self.size]


# -- blob streams --------------------------------------------------------------------------------


async def test_dropped_blob_stream_resumes_with_range_and_verifies() -> None:
    data = os.urandom(3 * CHUNK_BYTES + 100)
    cut = CHUNK_BYTES + 4321
    ranges: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ranges.append(request.headers.get("Range"))
        if len(ranges) == 1:
            return httpx.Response(200, headers={"Content-Length": str(len(data))}, stream=DroppingStream(data[:cut]))
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        return httpx.Response(206, headers=headers, content=data[start:])

    store, sleeps = make_store(handler)
    async with store:
        assert await read_all(store, blob_desc(data)) == data
    assert len(ranges) == 2
    assert ranges[0] is None
    # Resumed from the last byte handed on (a partial chunk in httpx's buffer is fetched again).
    resumed_at = int((ranges[1] or "").removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= cut
    assert len(sleeps.delays) == 1


async def test_resume_when_server_ignores_range() -> None:
    data = os.urandom(2 * CHUNK_BYTES)
    cut = 777
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(200, headers={"Content-Length": str(len(data))}, stream=DroppingStream(data[:cut]))
        return httpx.Response(200, content=data)

    store, _ = make_store(handler)
    async with store:
        assert await read_all(store, blob_desc(data)) == data
    assert calls == 2


async def test_blob_that_keeps_dropping_gives_up() -> None:
    data = os.urandom(10_000)
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, headers={"Content-Length": str(len(data))}, stream=DroppingStream(b"x"))

    store, _ = make_store(handler, retries=3)
    async with store:
        with pytest.raises(NetworkError) as excinfo:
            await read_all(store, blob_desc(data))
    assert calls == 3
    assert "cannot reach registry.test" in str(excinfo.value)


@pytest.mark.parametrize("size", [5000, THREADED_IO_BYTES + 5000])
async def test_truncated_blob_is_a_size_mismatch(size: int) -> None:
    data = os.urandom(size)
    store, _ = make_store(lambda request: httpx.Response(200, content=data[:-1000]))
    async with store:
        with pytest.raises(SizeMismatch):
            await read_all(store, blob_desc(data))


async def test_an_overlong_layer_fails_as_a_size_mismatch_on_the_threaded_path() -> None:
    data = os.urandom(THREADED_IO_BYTES + 5000)
    store, _ = make_store(lambda request: httpx.Response(200, content=data + b"extra bytes"))
    async with store:
        with pytest.raises(SizeMismatch):
            await read_all(store, blob_desc(data))


@pytest.mark.parametrize(
    "size", [2 * CHUNK_BYTES + 10, THREADED_IO_BYTES + CHUNK_BYTES]
)  # hashed on the loop; on a thread
async def test_wrong_blob_bytes_are_a_digest_mismatch_before_the_last_chunk(size: int) -> None:
    data = os.urandom(size)
    wrong = bytes([data[0] ^ 1]) + data[1:]
    store, _ = make_store(lambda request: httpx.Response(200, content=wrong))
    seen: list[bytes] = []
    async with store:
        with pytest.raises(DigestMismatch):
            async with store.open_blob(blob_desc(data)) as stream:
                seen.extend([chunk async for chunk in stream])
    assert sum(len(c) for c in seen) < len(data)


# -- retries -------------------------------------------------------------------------------------


async def test_429_with_retry_after_then_success() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(429, headers={"Retry-After": "7"})
        return httpx.Response(200, headers={"Content-Type": mt.OCI_MANIFEST}, content=MANIFEST)

    store, sleeps = make_store(handler)
    async with store:
        desc, _ = await store.fetch_manifest("latest")
    assert desc.digest == sha256_of(MANIFEST)
    assert sleeps.delays == [7.0]


async def test_retry_after_is_capped() -> None:
    responses = [
        httpx.Response(503, headers={"Retry-After": "86400"}),
        httpx.Response(200, headers={"Content-Length": "5"}),
    ]
    store, sleeps = make_store(lambda request: responses.pop(0))
    async with store:
        assert await store.blob_size(sha256_of(b"hello")) == 5
    assert sleeps.delays == [60.0]


async def test_500_then_success() -> None:
    responses = [httpx.Response(500), httpx.Response(200, json={"name": REPO, "tags": ["a"]})]
    store, sleeps = make_store(lambda request: responses.pop(0))
    async with store:
        assert await store.list_tags() == ["a"]
    assert len(sleeps.delays) == 1


async def test_5xx_forever_is_a_registry_error_after_bounded_attempts() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE", "message": "try later\nplease"}]})

    store, sleeps = make_store(handler, retries=4)
    async with store:
        with pytest.raises(RegistryError) as excinfo:
            await store.fetch_manifest("latest")
    assert calls == 4
    assert len(sleeps.delays) == 3
    # Exponential backoff (0.5 s base) with jitter of up to the same again.
    for attempt, delay in enumerate(sleeps.delays):
        assert 0.5 * 2**attempt <= delay <= 2 * 0.5 * 2**attempt
    err = excinfo.value
    assert err.status == 503
    assert err.codes == ("UNAVAILABLE",)
    assert "\n" not in str(err)


async def test_connection_refused_forever_is_a_network_error() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("connection refused")

    store, _ = make_store(handler, retries=3)
    async with store:
        with pytest.raises(NetworkError, match=r"^cannot reach registry\.test: ConnectError: connection refused$"):
            await store.fetch_manifest("latest")
    assert calls == 3


async def test_streamed_upload_is_not_retried_after_a_read_timeout() -> None:
    """A PATCH that may have been applied (and whose body is spent) must not be sent twice."""
    data = os.urandom(MONOLITHIC_MAX_BYTES + 1)
    patches = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal patches
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": f"/v2/{REPO}/blobs/uploads/u1"})
        if request.method == "PATCH":
            patches += 1
            raise httpx.ReadTimeout("timed out")
        return httpx.Response(204)

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    store, _ = make_store(handler)
    async with store:
        with pytest.raises(NetworkError):
            await store.write_blob(chunks())
    assert patches == 1


# -- manifests -------------------------------------------------------------------------------------


async def test_malformed_manifest_json_is_a_format_error() -> None:
    store, _ = make_store(
        lambda request: httpx.Response(200, headers={"Content-Type": mt.OCI_MANIFEST}, content=b"{nope")
    )
    async with store:
        with pytest.raises(FormatError):
            await store.fetch_manifest("latest")


async def test_manifest_by_digest_must_hash_to_it() -> None:
    store, _ = make_store(
        lambda request: httpx.Response(200, headers={"Content-Type": mt.OCI_MANIFEST}, content=MANIFEST)
    )
    async with store:
        with pytest.raises(DigestMismatch):
            await store.fetch_manifest(str(sha256_of(b"another manifest")))


async def test_manifest_by_tag_with_lying_digest_header() -> None:
    headers = {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": str(sha256_of(b"other"))}
    store, _ = make_store(lambda request: httpx.Response(200, headers=headers, content=MANIFEST))
    async with store:
        with pytest.raises(DigestMismatch):
            await store.fetch_manifest("latest")


@pytest.mark.parametrize("with_length", [True, False])
async def test_five_mib_manifest_is_too_large(with_length: bool) -> None:
    body = b" " * (5 * 1024 * 1024)
    read: list[int] = []

    class Counting(Chunks):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in super().__aiter__():
                read.append(len(chunk))
                yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Accept"] == ", ".join(mt.MANIFEST_TYPES)
        headers = {"Content-Type": mt.OCI_MANIFEST}
        if with_length:
            headers["Content-Length"] = str(len(body))
        return httpx.Response(200, headers=headers, stream=Counting(body))

    store, _ = make_store(handler)
    async with store:
        with pytest.raises(TooLarge):
            await store.fetch_manifest("latest")
    if with_length:
        assert read == []
    else:
        assert MAX_MANIFEST_BYTES < sum(read) < len(body)


async def test_not_found_names_the_manifest() -> None:
    body = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
    store, _ = make_store(lambda request: httpx.Response(404, json=body))
    async with store:
        with pytest.raises(NotFound, match=r"manifest registry\.test/team/cache:v1 not found"):
            await store.fetch_manifest("v1")


async def test_tags_follow_link_pagination() -> None:
    """distribution 2.8 does not paginate tags, so the integration tests cannot show this."""
    pages = {
        None: (["a", "b"], f'</v2/{REPO}/tags/list?last=b&n=2>; rel="next"'),
        "b": (["c"], None),
    }
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        tags, link = pages[request.url.params.get("last")]
        headers = {"Link": link} if link else {}
        return httpx.Response(200, headers=headers, json={"name": REPO, "tags": tags})

    store, _ = make_store(handler)
    async with store:
        assert await store.list_tags(page_size=2) == ["a", "b", "c"]
    assert seen == [
        f"https://{HOST}/v2/{REPO}/tags/list?n=2",
        f"https://{HOST}/v2/{REPO}/tags/list?last=b&n=2",
    ]


# -- auth ------------------------------------------------------------------------------------------


def bearer_challenge(scope: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="https://auth.test/token",service="registry.test",scope="{scope}"'}


async def test_401_loop_stops_with_auth_error() -> None:
    registry_calls = 0
    token_calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal registry_calls, token_calls
        if request.url.host == "auth.test":
            token_calls += 1
            return httpx.Response(200, json={"token": "t0k3n", "expires_in": 300})
        registry_calls += 1
        return httpx.Response(401, headers=bearer_challenge(f"repository:{REPO}:pull"))

    store, _ = make_store(handler, credentials=Credentials("me", "pw"))
    async with store:
        with pytest.raises(AuthError) as excinfo:
            await store.fetch_manifest("latest")
    assert registry_calls == 2
    assert token_calls == 1
    assert "pw" not in str(excinfo.value)
    assert excinfo.value.hint == f"run docker login {HOST}"


@pytest.mark.parametrize(
    "header",
    [
        "Negotiate abc",
        'Bearer service="registry.test"',
        'Bearer realm="ftp://auth.test/token"',
        "Bearer realm",
    ],
)
async def test_bad_www_authenticate_is_an_auth_error(header: str) -> None:
    store, _ = make_store(
        lambda request: httpx.Response(401, headers={"WWW-Authenticate": header}),
        credentials=Credentials("me", "pw"),
    )
    async with store:
        with pytest.raises(AuthError):
            await store.fetch_manifest("latest")


async def test_missing_www_authenticate_is_an_auth_error() -> None:
    store, _ = make_store(lambda request: httpx.Response(401))
    async with store:
        with pytest.raises(AuthError):
            await store.list_tags()


async def test_dead_token_endpoint() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(500)
        return httpx.Response(401, headers=bearer_challenge(f"repository:{REPO}:pull"))

    store, _ = make_store(handler)
    async with store:
        with pytest.raises(RegistryError, match=r"token server auth\.test failed with status 500"):
            await store.list_tags()


async def test_token_is_fetched_once_and_reused_per_scope() -> None:
    token_requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            token_requests.append(request)
            return httpx.Response(200, json={"access_token": "abc", "expires_in": 600})
        if request.headers.get("Authorization") != "Bearer abc":
            return httpx.Response(401, headers=bearer_challenge(f"repository:{REPO}:pull"))
        return httpx.Response(200, headers={"Content-Length": "3"})

    store, _ = make_store(handler, credentials=Credentials("me", "pw"))
    async with store:
        for _ in range(3):
            assert await store.blob_size(sha256_of(b"abc")) == 3
    assert len(token_requests) == 1
    token_request = token_requests[0]
    assert token_request.method == "GET"
    assert token_request.url.params.get_list("scope") == [f"repository:{REPO}:pull"]
    assert token_request.url.params["service"] == "registry.test"
    assert token_request.headers["Authorization"] == "Basic " + base64.b64encode(b"me:pw").decode()


async def test_token_post_fallback_when_get_is_not_allowed() -> None:
    methods: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            methods.append(request.method)
            if request.method == "GET":
                return httpx.Response(405)
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            assert form["grant_type"] == "password"
            assert form["username"] == "me"
            return httpx.Response(200, json={"token": "posted"})
        if request.headers.get("Authorization") == "Bearer posted":
            return httpx.Response(200, json={"name": REPO, "tags": []})
        return httpx.Response(401, headers=bearer_challenge(f"repository:{REPO}:pull"))

    store, _ = make_store(handler, credentials=Credentials("me", "pw"))
    async with store:
        assert await store.list_tags() == []
    assert methods == ["GET", "POST"]


async def test_cross_host_redirect_drops_authorization() -> None:
    seen: dict[str, str | None] = {}
    data = b"layer bytes"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.test":
            seen["storage"] = request.headers.get("Authorization")
            return httpx.Response(200, content=data)
        if "Authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="test"'})
        seen["registry"] = request.headers["Authorization"]
        return httpx.Response(307, headers={"Location": "https://storage.test/blob?sig=1"})

    store, _ = make_store(handler, credentials=Credentials("me", "pw"))
    async with store:
        assert await read_all(store, blob_desc(data)) == data
    assert seen["registry"] is not None
    assert seen["registry"].startswith("Basic ")
    assert seen["storage"] is None


async def test_challenge_from_redirect_target_is_not_answered() -> None:
    """A 401 from the host we were redirected to must not get our credentials."""
    token_calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal token_calls
        if request.url.host == "evil.test":
            return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://evil.test/steal"'})
        if request.url.path == "/steal":
            token_calls += 1
            return httpx.Response(200, json={"token": "x"})
        return httpx.Response(307, headers={"Location": "https://evil.test/blob"})

    store, _ = make_store(handler, credentials=Credentials("me", "pw"))
    async with store:
        with pytest.raises(AuthError):
            await read_all(store, blob_desc(b"data"))
    assert token_calls == 0


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials("alice", "hunter2", "idtok")
    assert "hunter2" not in repr(creds)
    assert "idtok" not in repr(creds)
    assert "alice" in repr(creds)


def test_parse_www_authenticate_keeps_quoted_commas() -> None:
    (challenge,) = parse_www_authenticate(
        ['Bearer realm="https://auth.test/token",service="reg",scope="repository:a/b:pull,push"']
    )
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.test/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
    }


# -- how many blob checks are in flight ----------------------------------------------------------


def test_a_registry_on_this_machine_gets_fewer_requests_in_flight() -> None:
    from cachescope.core.stores.registry import LOOPBACK_CONCURRENCY, REMOTE_CONCURRENCY

    assert LOOPBACK_CONCURRENCY < REMOTE_CONCURRENCY
    for host, expected in (
        ("127.0.0.1:5000", LOOPBACK_CONCURRENCY),
        ("localhost:5000", LOOPBACK_CONCURRENCY),
        ("ghcr.io", REMOTE_CONCURRENCY),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", REMOTE_CONCURRENCY),
    ):
        client = RegistryClient(RegistryHost(host, plain_http=True), credentials=Credentials())
        assert client.repository("team/cache").request_concurrency == expected, host


async def test_blob_checks_respect_the_stores_concurrency_hint() -> None:
    import asyncio
    from pathlib import Path

    from cachescope.core.model.digest import Digest
    from cachescope.core.reader import _with_blob_states, load_cache
    from cachescope.core.stores.local import LocalStore

    fixture = Path(__file__).resolve().parents[1] / "data" / "buildkit" / "max-default"
    cache = await load_cache(LocalStore(fixture), "latest", check_blobs=False)
    in_flight = peak = 0

    class SlowStore:
        request_concurrency = 3

        async def blob_size(self, digest: Digest) -> int | None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return 1

    checked = await _with_blob_states(SlowStore(), cache)  # type: ignore[arg-type]
    assert len(checked.blobs or {}) == 8
    assert peak == 3
