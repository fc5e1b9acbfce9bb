"""RegistryStore and RegistryClient against the real distribution registry (tests/registry_server.py)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cachescope.core.errors import AuthError, DigestMismatch, NetworkError, NotFound, SizeMismatch, TooLarge
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.digest import Digest, sha256_of
from cachescope.core.model.oci import Descriptor, Index, Manifest
from cachescope.core.model.reference import RegistryHost, parse_registry_ref
from cachescope.core.stores.auth import Credentials
from cachescope.core.stores.base import CHUNK_BYTES, SupportsManifestDelete, SupportsMount
from cachescope.core.stores.registry import MONOLITHIC_MAX_BYTES, RegistryClient, RegistryStore, open_registry
from tests.registry_server import RunningRegistry, iter_file, push_document, push_layout

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent.parent / "data" / "buildkit"
CATALOG = {f["name"]: f for f in json.loads((DATA / "catalog.json").read_text())["fixtures"]}
ANONYMOUS = Credentials()


def client_for(reg: RunningRegistry, credentials: Credentials | None = ANONYMOUS) -> RegistryClient:
    return RegistryClient(RegistryHost(reg.host, plain_http=True), credentials=credentials)


async def chunks_of(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def one_line(err: Exception) -> str:
    text = str(err)
    assert "\n" not in text
    return text


async def test_ping_reports_api_version(registry: RunningRegistry) -> None:
    async with client_for(registry) as client:
        assert await client.ping() == "registry/2.0"


async def test_open_registry_uses_plain_http_for_loopback(registry: RunningRegistry, repo_name: str) -> None:
    ref = parse_registry_ref(f"{registry.host}/{repo_name}:x")
    store = await open_registry(ref, credentials=ANONYMOUS)
    async with store:
        assert isinstance(store, RegistryStore)
        assert isinstance(store, SupportsMount)
        assert isinstance(store, SupportsManifestDelete)
        assert store.client.base_url == f"http://{registry.host}"
        assert store.display_name == f"{registry.host}/{repo_name}"
    client = await open_registry(RegistryHost(registry.host, plain_http=True), credentials=ANONYMOUS)
    async with client:
        assert await client.ping() == "registry/2.0"


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [("max-default", Manifest), ("max-index", Index), ("max-docker", Index)],
)
async def test_push_and_fetch_each_cache_form(
    registry: RunningRegistry, repo_name: str, fixture: str, kind: type[Manifest | Index]
) -> None:
    expected = CATALOG[fixture]["expected"]
    async with client_for(registry) as client:
        store = client.repository(repo_name)
        pushed = await push_layout(DATA / fixture, store, "cache")
        assert str(pushed.digest) == expected["manifest_digest"]
        assert pushed.media_type == expected["manifest_media_type"]

        by_tag, doc = await store.fetch_manifest("cache")
        assert by_tag == Descriptor(
            expected["manifest_media_type"], Digest.parse(expected["manifest_digest"]), by_tag.size
        )
        assert isinstance(doc, kind)
        raw = (DATA / fixture / "blobs" / "sha256" / by_tag.digest.hex).read_bytes()
        assert doc.raw == raw
        assert by_tag.size == len(raw)

        by_digest, doc2 = await store.fetch_manifest(expected["manifest_digest"])
        assert by_digest == by_tag
        assert doc2.raw == raw
        assert (await store.resolve("cache")) == by_tag

        # The same document by digest only, into a repository that has no tags.
        untagged = client.repository(f"{repo_name}-untagged")
        assert await push_document(DATA / fixture, untagged, by_tag) == by_tag
        assert (await untagged.fetch_manifest(str(by_tag.digest)))[1].raw == raw
        # distribution 2.8 knows a repository by its tags: with none, tags/list is NAME_UNKNOWN.
        with pytest.raises(NotFound, match="NAME_UNKNOWN"):
            await untagged.list_tags()

        config = Descriptor(mt.BUILDKIT_CACHE_CONFIG, Digest.parse(expected["config_digest"]), expected["config_size"])
        config_raw = await store.read_blob(config)
        assert sha256_of(config_raw) == config.digest
        assert b'"records"' in config_raw


async def test_put_manifest_by_digest_leaves_no_tag(registry: RunningRegistry, repo_name: str) -> None:
    expected = CATALOG["max-index"]["expected"]
    async with client_for(registry) as client:
        store = client.repository(repo_name)
        await push_layout(DATA / "max-default", store, "keep")
        raw = (DATA / "max-index" / "blobs" / "sha256" / expected["manifest_digest"][7:]).read_bytes()
        desc = await store.put_manifest(raw, mt.OCI_INDEX)
        assert str(desc.digest) == expected["manifest_digest"]
        fetched, doc = await store.fetch_manifest(str(desc.digest))
        assert fetched.media_type == mt.OCI_INDEX
        assert isinstance(doc, Index)
        assert await store.list_tags() == ["keep"]


async def test_catalog_follows_link_pagination(registry: RunningRegistry, repo_name: str) -> None:
    tags = ["a", "b", "c"]
    async with client_for(registry) as client:
        store = client.repository(repo_name)
        await push_layout(DATA / "min-default", store, tags[0])
        raw = DATA / "min-default" / "blobs" / "sha256" / CATALOG["min-default"]["expected"]["manifest_digest"][7:]
        for tag in tags[1:]:
            await store.put_manifest(raw.read_bytes(), mt.OCI_MANIFEST, tag=tag)
        other = client.repository(f"{repo_name}-other")
        await push_layout(DATA / "min-default", other, "x")

        # distribution 2.8 ignores `n` on tags/list (tag pagination came with v3) and returns
        # tags unsorted; Link pagination of tags is covered in tests/unit/test_registry_faults.py.
        assert sorted(await store.list_tags(page_size=1)) == tags

        repos = await client.list_repositories(page_size=1)
        assert repo_name in repos
        assert f"{repo_name}-other" in repos
        assert repos == sorted(repos)
        catalog_pages = [p async for p in client.iter_pages("/v2/_catalog", 1, (), "catalog")]
        assert len(catalog_pages) >= 2
        assert all(len(p["repositories"]) <= 1 for p in catalog_pages)  # type: ignore[arg-type]


async def test_blob_round_trip_streams_in_chunks(registry: RunningRegistry, repo_name: str) -> None:
    data = os.urandom(MONOLITHIC_MAX_BYTES + 3 * CHUNK_BYTES + 12345)  # a streamed upload
    digest = sha256_of(data)
    async with client_for(registry) as client:
        store = client.repository(repo_name)
        desc = await store.write_blob(chunks_of(data), media_type=mt.OCI_LAYER)
        assert desc == Descriptor(mt.OCI_LAYER, digest, len(data))
        assert await store.blob_size(digest) == len(data)

        received: list[bytes] = []
        async with store.open_blob(desc) as stream:
            received.extend([chunk async for chunk in stream])
        assert len(received) > 1
        assert max(len(c) for c in received) < 2 * CHUNK_BYTES  # socket reads joined to about CHUNK_BYTES
        assert b"".join(received) == data

        async with store.open_blob(desc, offset=CHUNK_BYTES + 7) as stream:
            tail = b"".join([chunk async for chunk in stream])
        assert tail == data[CHUNK_BYTES + 7 :]

        with pytest.raises(TooLarge):
            await store.read_blob(desc, limit=1024)
        # Existing blob with `expected`: reused, the stream is never read.
        again = await store.write_blob(chunks_of(b"not read"), expected=desc)
        assert again is desc


async def test_write_blob_refuses_wrong_bytes(registry: RunningRegistry, repo_name: str) -> None:
    data = os.urandom(MONOLITHIC_MAX_BYTES + 2 * CHUNK_BYTES + 5)
    claimed = Descriptor(mt.OCI_LAYER, sha256_of(b"something else"), len(data))
    async with client_for(registry) as client:
        store = client.repository(repo_name)
        with pytest.raises(DigestMismatch):
            await store.write_blob(chunks_of(data), expected=claimed)
        assert await store.blob_size(claimed.digest) is None
        assert await store.blob_size(sha256_of(data)) is None
        small = Descriptor(mt.OCI_LAYER, sha256_of(b"abc"), 3)
        with pytest.raises(DigestMismatch):
            await store.write_blob(chunks_of(b"abd"), expected=small)
        assert await store.blob_size(small.digest) is None
        short = Descriptor(mt.OCI_LAYER, sha256_of(data[: len(data) // 2]), len(data) // 2)
        with pytest.raises(SizeMismatch):  # more bytes than promised: stopped mid-stream
            await store.write_blob(chunks_of(data), expected=short)
        assert await store.blob_size(short.digest) is None


@pytest.mark.parametrize("size", [1000, MONOLITHIC_MAX_BYTES, MONOLITHIC_MAX_BYTES + 1, 3 * MONOLITHIC_MAX_BYTES])
async def test_uploads_are_one_put_or_one_streamed_patch(registry: RunningRegistry, repo_name: str, size: int) -> None:
    """One PATCH whatever the size: several registries mishandle a sequence of ranged PATCHes."""
    seen: list[str] = []
    patch_headers: list[httpx.Headers] = []
    real = httpx.AsyncHTTPTransport()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if request.method == "PATCH":
            patch_headers.append(request.headers)
        return await real.handle_async_request(request)

    data = os.urandom(size)
    host = RegistryHost(registry.host, plain_http=True)
    async with RegistryClient(host, credentials=ANONYMOUS, transport=httpx.MockTransport(handler)) as client:
        store = client.repository(repo_name)
        desc = await store.write_blob(chunks_of(data, 300_000))
        copied = await client.repository(f"{repo_name}-copy").write_blob(chunks_of(data, 300_000), expected=desc)
    await real.aclose()
    assert desc.digest == sha256_of(data)
    assert copied == desc
    uploads = [m for m in seen if m in {"PATCH", "PUT"}]
    assert uploads == (["PUT"] * 2 if size <= MONOLITHIC_MAX_BYTES else ["PATCH", "PUT"] * 2)
    if patch_headers:  # a new blob's length is unknown; a copy announces it
        new, copy = patch_headers
        assert new.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in new
        assert copy.get("Content-Length") == str(size)
        assert "Transfer-Encoding" not in copy
    async with client_for(registry) as client, client.repository(repo_name).open_blob(desc) as stream:
        assert b"".join([c async for c in stream]) == data


async def test_layer_blob_from_fixture_streams_verified(registry: RunningRegistry, repo_name: str) -> None:
    layer = CATALOG["min-default"]["expected"]["layers"][2]
    desc = Descriptor(layer["media_type"], Digest.parse(layer["digest"]), layer["size"])
    async with client_for(registry) as client:
        store = client.repository(repo_name)
        path = DATA / "min-default" / "blobs" / "sha256" / desc.digest.hex
        assert await store.write_blob(iter_file(path, 4096), expected=desc) is desc
        async with store.open_blob(desc) as stream:
            assert b"".join([c async for c in stream]) == path.read_bytes()


async def test_mount_between_repositories(registry: RunningRegistry, repo_name: str) -> None:
    data = os.urandom(1000)
    async with client_for(registry) as client:
        source = client.repository(f"{repo_name}-src")
        target = client.repository(f"{repo_name}-dst")
        desc = await source.write_blob(chunks_of(data))
        assert await target.blob_size(desc.digest) is None
        assert await target.mount_blob(desc, source.repository) is True
        assert await target.blob_size(desc.digest) == len(data)
        missing = Descriptor(mt.OCI_LAYER, sha256_of(b"never uploaded"), 14)
        assert await target.mount_blob(missing, source.repository) is False
        assert await target.blob_size(missing.digest) is None


async def test_delete_tag_manifest_and_blob(registry: RunningRegistry, repo_name: str) -> None:
    async with client_for(registry) as client:
        store = client.repository(repo_name)
        desc = await push_layout(DATA / "max-default", store, "doomed")
        await store.delete_tag("doomed")
        with pytest.raises(NotFound) as excinfo:
            await store.fetch_manifest("doomed")
        assert f"{registry.host}/{repo_name}:doomed" in one_line(excinfo.value)
        with pytest.raises(NotFound):
            await store.fetch_manifest(str(desc.digest))

        index_desc = await push_layout(DATA / "max-index", store, "other")
        await store.delete_manifest(index_desc.digest)
        with pytest.raises(NotFound):
            await store.fetch_manifest(str(index_desc.digest))

        config_digest = Digest.parse(CATALOG["max-default"]["expected"]["config_digest"])
        assert await store.blob_size(config_digest) is not None
        await store.delete_blob(config_digest)
        assert await store.blob_size(config_digest) is None
        with pytest.raises(NotFound):
            await store.delete_blob(config_digest)


async def test_missing_things_are_not_found(registry: RunningRegistry, repo_name: str) -> None:
    async with client_for(registry) as client:
        store = client.repository(repo_name)
        with pytest.raises(NotFound) as excinfo:
            await store.fetch_manifest("nope")
        assert repo_name in one_line(excinfo.value)
        with pytest.raises(NotFound):
            await store.list_tags()
        digest = sha256_of(b"absent")
        assert await store.blob_size(digest) is None
        with pytest.raises(NotFound) as blob_exc:
            await store.read_blob(Descriptor(mt.OCI_LAYER, digest, 6))
        assert str(digest) in one_line(blob_exc.value)


# -- Basic auth ------------------------------------------------------------------------------------


async def test_basic_auth_with_right_password(basic_registry: RunningRegistry, repo_name: str) -> None:
    creds = Credentials(basic_registry.username or "", basic_registry.password or "")
    async with client_for(basic_registry, creds) as client:
        assert await client.ping() == "registry/2.0"
        store = client.repository(repo_name)
        desc = await push_layout(DATA / "min-default", store, "latest")
        fetched, _ = await store.fetch_manifest("latest")
        assert fetched == desc
        assert await store.list_tags() == ["latest"]
        assert repo_name in await client.list_repositories()
        await _streamed_round_trip(store)  # a body streamed once must not need a 401 retry


async def _streamed_round_trip(store: RegistryStore) -> None:
    data = os.urandom(MONOLITHIC_MAX_BYTES + 100_000)
    desc = await store.write_blob(chunks_of(data))
    assert desc.digest == sha256_of(data)
    async with store.open_blob(desc) as stream:
        assert b"".join([c async for c in stream]) == data


async def test_basic_auth_with_wrong_password(basic_registry: RunningRegistry, repo_name: str) -> None:
    async with client_for(basic_registry, Credentials(basic_registry.username or "", "Xq9-not-the-password")) as client:
        with pytest.raises(AuthError) as excinfo:
            await client.repository(repo_name).fetch_manifest("latest")
    message = one_line(excinfo.value)
    assert basic_registry.host in message
    assert "Xq9" not in message
    assert excinfo.value.hint == f"run docker login {basic_registry.host}"


async def test_basic_auth_anonymous_is_refused(basic_registry: RunningRegistry) -> None:
    async with client_for(basic_registry) as client:
        with pytest.raises(AuthError) as excinfo:
            await client.ping()
    assert "docker login" in (excinfo.value.hint or "")


# -- Bearer token auth ---------------------------------------------------------------------------


async def test_token_auth_push_pull_and_catalog(token_registry: RunningRegistry, repo_name: str) -> None:
    server = token_registry.token_server
    assert server is not None
    creds = Credentials(token_registry.username or "", token_registry.password or "")
    async with client_for(token_registry, creds) as client:
        assert await client.ping() == "registry/2.0"
        store = client.repository(repo_name)
        before = len(server.requests)
        desc = await push_layout(DATA / "max-index", store, "cache")
        fetched, doc = await store.fetch_manifest("cache")
        assert fetched == desc
        assert isinstance(doc, Index)
        assert await store.list_tags() == ["cache"]
        assert repo_name in await client.list_repositories(page_size=1)
        await _streamed_round_trip(store)
        await store.delete_tag("cache")
        with pytest.raises(NotFound):
            await store.fetch_manifest("cache")
    issued = server.requests[before:]
    scopes = {scope for r in issued for scope in r.scopes}
    assert f"repository:{repo_name}:pull,push" in scopes
    assert "registry:catalog:*" in scopes
    assert all(r.user == token_registry.username and r.status == 200 for r in issued)
    # Tokens are cached per scope: a dozen blob and manifest requests, a handful of token requests.
    assert len(issued) <= 6


async def test_token_auth_wrong_password(token_registry: RunningRegistry, repo_name: str) -> None:
    async with client_for(token_registry, Credentials(token_registry.username or "", "Xq9-not-the-password")) as client:
        with pytest.raises(AuthError) as excinfo:
            await client.repository(repo_name).list_tags()
    assert "Xq9" not in one_line(excinfo.value)
    assert "refused" in str(excinfo.value)


async def test_token_auth_anonymous_gets_no_access(token_registry: RunningRegistry, repo_name: str) -> None:
    async with client_for(token_registry) as client:
        with pytest.raises(AuthError) as excinfo:
            await client.repository(repo_name).fetch_manifest("latest")
    assert excinfo.value.hint == f"run docker login {token_registry.host}"


# -- docker config and credential helpers ----------------------------------------------------------


def write_helper(bin_dir: Path, name: str, reply: dict[str, Any], record: Path) -> None:
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"assert sys.argv[1:] == ['get'], sys.argv\n"
        f"open({str(record)!r}, 'w').write(sys.stdin.read())\n"
        f"print(json.dumps({reply!r}))\n"
    )
    script.chmod(0o755)


async def test_credential_helper_supplies_basic_credentials(
    basic_registry: RunningRegistry, repo_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    helper = f"cstest{secrets.token_hex(3)}"
    bin_dir, config_dir = tmp_path / "bin", tmp_path / "docker"
    bin_dir.mkdir()
    config_dir.mkdir()
    record = tmp_path / "asked-for"
    reply = {"ServerURL": basic_registry.host, "Username": basic_registry.username, "Secret": basic_registry.password}
    write_helper(bin_dir, helper, reply, record)
    (config_dir / "config.json").write_text(json.dumps({"credHelpers": {basic_registry.host: helper}}))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))

    async with client_for(basic_registry, credentials=None) as client:
        store = client.repository(repo_name)
        desc = await push_layout(DATA / "min-default", store, "helper")
        assert (await store.fetch_manifest("helper"))[0] == desc
    assert record.read_text() == basic_registry.host


async def test_docker_config_auths_entry(
    basic_registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = base64.b64encode(f"{basic_registry.username}:{basic_registry.password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {f"http://{basic_registry.host}/v2/": {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    async with client_for(basic_registry, credentials=None) as client:
        assert await client.ping() == "registry/2.0"


async def test_missing_credential_helper_is_an_auth_error(
    basic_registry: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "cachescope-absent-helper"}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    async with client_for(basic_registry, credentials=None) as client:
        with pytest.raises(AuthError) as excinfo:
            await client.ping()
    assert "docker-credential-cachescope-absent-helper" in one_line(excinfo.value)


async def test_a_streamed_upload_dropped_midway_commits_nothing_and_can_be_redone(
    registry: RunningRegistry, repo_name: str
) -> None:
    data = os.urandom(2 * MONOLITHIC_MAX_BYTES)
    desc = Descriptor(mt.OCI_LAYER, sha256_of(data), len(data))
    real = httpx.AsyncHTTPTransport()
    methods: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        if request.method == "PATCH":
            received = 0
            async for part in request.stream:
                received += len(part)
                if received > MONOLITHIC_MAX_BYTES:
                    raise httpx.WriteError("connection dropped (injected)", request=request)
        return await real.handle_async_request(request)

    host = RegistryHost(registry.host, plain_http=True)
    async with RegistryClient(host, credentials=ANONYMOUS, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(NetworkError, match="injected"):
            await client.repository(repo_name).write_blob(chunks_of(data), expected=desc)
    await real.aclose()
    assert methods.count("PATCH") == 1  # a spent body is never sent again
    assert "DELETE" in methods  # the abandoned upload is cancelled
    async with client_for(registry) as client:
        store = client.repository(repo_name)
        assert await store.blob_size(desc.digest) is None
        assert await store.write_blob(chunks_of(data), expected=desc) == desc  # the rerun finishes
        assert await store.blob_size(desc.digest) == len(data)
