"""Media-type constants and predicates: the only home of these strings.

Sources: OCI image-spec, Docker distribution schema 2, BuildKit util/compression.
"""

from __future__ import annotations

from typing import Final, Literal

Compression = Literal["gzip", "zstd", "estargz", "uncompressed"]
Family = Literal["oci", "docker"]

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_IMAGE_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYOUT_HEADER: Final = "application/vnd.oci.layout.header.v1+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_IMAGE_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
BUILDKIT_CACHE_CONFIG: Final = "application/vnd.buildkit.cacheconfig.v0"

OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD: Final = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

# Every manifest type a registry may hold; sent as Accept on every manifest request,
# because distribution returns 404 rather than converting when the stored type is not
# accepted (see fixtures/buildkit/registry-dump).
MANIFEST_TYPES: Final = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_MANIFEST_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

ANNOTATION_UNCOMPRESSED: Final = "containerd.io/uncompressed"
ANNOTATION_CREATED: Final = "buildkit/createdat"
ANNOTATION_ESTARGZ_TOC: Final = "containerd.io/snapshot/stargz/toc.digest"
ANNOTATION_ESTARGZ_SIZE: Final = "io.containers.estargz.uncompressed-size"
ANNOTATION_DISTRIBUTION_SOURCE: Final = "containerd.io/distribution.source."
ANNOTATION_REF_NAME: Final = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME: Final = "io.containerd.image.name"
INLINE_CACHE_KEY: Final = "moby.buildkit.cache.v0"

_COMPRESSION_BY_TYPE: Final[dict[str, Compression]] = {
    OCI_LAYER: "uncompressed",
    OCI_LAYER_ND: "uncompressed",
    DOCKER_LAYER: "uncompressed",
    DOCKER_FOREIGN_LAYER: "uncompressed",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ND_GZIP: "gzip",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_ND_ZSTD: "zstd",
    DOCKER_LAYER_ZSTD: "zstd",
}

_LAYER_TYPE: Final[dict[tuple[Family, Compression], str]] = {
    ("oci", "uncompressed"): OCI_LAYER,
    ("oci", "gzip"): OCI_LAYER_GZIP,
    ("oci", "estargz"): OCI_LAYER_GZIP,
    ("oci", "zstd"): OCI_LAYER_ZSTD,
    ("docker", "uncompressed"): DOCKER_LAYER,
    ("docker", "gzip"): DOCKER_LAYER_GZIP,
    ("docker", "estargz"): DOCKER_LAYER_GZIP,
    ("docker", "zstd"): DOCKER_LAYER_ZSTD,
}

_DOCKER_TYPES: Final = frozenset(
    {
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST,
        DOCKER_IMAGE_CONFIG,
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_ZSTD,
        DOCKER_FOREIGN_LAYER,
        DOCKER_FOREIGN_LAYER_GZIP,
    }
)


def is_layer(media_type: str) -> bool:
    """True for any tar layer type BuildKit maps to a compression."""
    return media_type in _COMPRESSION_BY_TYPE


def layer_compression(media_type: str, annotations: dict[str, str] | None = None) -> Compression | None:
    """Compression named by a layer media type; estargz is gzip plus its TOC annotation."""
    compression = _COMPRESSION_BY_TYPE.get(media_type)
    if compression == "gzip" and annotations and ANNOTATION_ESTARGZ_TOC in annotations:
        return "estargz"
    return compression


def layer_media_type(family: Family, compression: Compression) -> str:
    """The layer media type BuildKit writes for a compression in a media-type family."""
    return _LAYER_TYPE[(family, compression)]


def family_of(media_type: str) -> Family | None:
    """`docker` or `oci` for types that belong to one family, None for neutral ones."""
    if media_type in _DOCKER_TYPES:
        return "docker"
    if media_type.startswith("application/vnd.oci."):
        return "oci"
    return None


def is_nondistributable(media_type: str) -> bool:
    return "nondistributable" in media_type or "foreign" in media_type
