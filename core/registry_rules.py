"""What each registry accepts, and the catalogue of every diagnose finding code.

Pure data plus host-name detection; no I/O. Every verdict and rule names its source
(docs/registries.md, BuildKit source or an issue thread) so a user can check it, and
statuses nobody has published are `unknown`, never assumed fine.

Codes are stable: never renumber, rename or reuse one. The README table is generated
from `RULES` (`render_rules_markdown`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal, get_args

Severity = Literal["error", "warning", "info"]
Basis = Literal["confirmed", "reported", "inferred", "unknown"]
Target = Literal[
    "ecr",
    "ecr-public",
    "gcr",
    "gar",
    "quay",
    "harbor",
    "artifactory",
    "acr",
    "ghcr",
    "dockerhub",
    "gitlab",
    "nexus",
    "gitea",
    "zot",
    "distribution",
    "distribution3",
]
ListForm = Literal["index", "docker-manifest-list"]
RegistryForm = Literal["index", "docker-manifest-list", "image-manifest"]

TARGETS: Final[tuple[Target, ...]] = get_args(Target)

TARGET_NAMES: Final[dict[Target, str]] = {
    "ecr": "Amazon ECR",
    "ecr-public": "Amazon ECR Public",
    "gcr": "Google Container Registry (gcr.io)",
    "gar": "Google Artifact Registry",
    "quay": "Quay",
    "harbor": "Harbor",
    "artifactory": "JFrog Artifactory",
    "acr": "Azure Container Registry",
    "ghcr": "GitHub Container Registry",
    "dockerhub": "Docker Hub",
    "gitlab": "GitLab Container Registry",
    "nexus": "Sonatype Nexus",
    "gitea": "Gitea/Forgejo",
    "zot": "Zot",
    "distribution": "CNCF distribution v2.x (registry:2)",
    "distribution3": "CNCF distribution v3.x (registry:3)",
}

# --- sources (docs/registries.md "References"; BuildKit docs) ---------------------------
REGISTRIES_DOC: Final = "docs/registries.md"
FORMAT_DOC: Final = "docs/buildkit-cache-format.md"
BK_699: Final = "https://github.com/moby/buildkit/issues/699"
BK_1143: Final = "https://github.com/moby/buildkit/issues/1143"
BK_1440: Final = "https://github.com/moby/buildkit/issues/1440"
BK_1550: Final = "https://github.com/moby/buildkit/issues/1550"
BK_1865: Final = "https://github.com/moby/buildkit/issues/1865"
BK_2068: Final = "https://github.com/moby/buildkit/issues/2068"
BK_2251: Final = "https://github.com/moby/buildkit/issues/2251"
BK_2479: Final = "https://github.com/moby/buildkit/issues/2479"
BK_2761: Final = "https://github.com/moby/buildkit/issues/2761"
BK_3610: Final = "https://github.com/moby/buildkit/pull/3610"
BK_3719: Final = "https://github.com/moby/buildkit/issues/3719"
BK_3724: Final = "https://github.com/moby/buildkit/pull/3724"
BK_4916: Final = "https://github.com/moby/buildkit/issues/4916"
BK_5892: Final = "https://github.com/moby/buildkit/pull/5892"
BK_5966: Final = "https://github.com/moby/buildkit/pull/5966"
BK_2685: Final = "https://github.com/moby/buildkit/pull/2685"
BK_3136: Final = "https://github.com/moby/buildkit/pull/3136"
BK_DOCS: Final = "https://docs.docker.com/build/cache/backends/registry/"
AWS_ROADMAP_876: Final = "https://github.com/aws/containers-roadmap/issues/876"
AWS_BLOG: Final = (
    "https://aws.amazon.com/blogs/containers/announcing-remote-cache-support-in-amazon-ecr-for-buildkit-clients/"
)
AWS_ROADMAP_2306: Final = "https://github.com/aws/containers-roadmap/issues/2306"
AWS_ROADMAP_2860: Final = "https://github.com/aws/containers-roadmap/issues/2860"
EARTHLY_3714: Final = "https://github.com/earthly/earthly/issues/3714"
EARTHLY_MATRIX: Final = "https://github.com/earthly/earthly/blob/main/docs/caching/caching-via-registry.md"
HARBOR_14774: Final = "https://github.com/goharbor/harbor/issues/14774"
JFROG_KB: Final = (
    "https://jfrog.com/help/r/artifactory-using-docker-buildx-cache-to-and-cache-from-with-artifactory-"
    "and-why-max-unique-tags-does-not-apply"
)
QUAY_MEDIATYPES: Final = (
    "https://docs.redhat.com/en/documentation/red_hat_quay/3.10/html/manage_red_hat_quay/supported-oci-media-types"
)
HUB_2322: Final = "https://github.com/docker/hub-feedback/issues/2322"
GITLAB_414: Final = "https://gitlab.com/gitlab-org/container-registry/-/issues/414"
GITLAB_REGISTRY: Final = "https://gitlab.com/gitlab-org/container-registry"
DIST_3452: Final = "https://github.com/distribution/distribution/issues/3452"
DIST_3863: Final = "https://github.com/distribution/distribution/issues/3863"
DIST_V3: Final = "https://github.com/distribution/distribution/releases/tag/v3.0.0"
DIST_CONFIG: Final = "https://github.com/distribution/distribution/blob/main/docs/content/about/configuration.md"
ZOT_140: Final = "https://github.com/azrtydxb/kryton/pull/140"
GITEA_28973: Final = "https://github.com/go-gitea/gitea/issues/28973"
GITEA_37093: Final = "https://github.com/go-gitea/gitea/issues/37093"
OCI_DIST_SPEC: Final = "https://github.com/opencontainers/distribution-spec/blob/main/spec.md"

IMAGE_MANIFEST_FLAGS: Final = "image-manifest=true,oci-mediatypes=true"


@dataclass(frozen=True, slots=True)
class Rule:
    """One finding code: what triggers it, how bad it is, what to do, and who says so."""

    code: str
    severity: Severity
    title: str
    trigger: str
    fix: str
    sources: tuple[str, ...]
    basis: Basis
    origin: Literal["diagnose", "analysis"] = "diagnose"
    """`analysis` codes come from `analyze()` warnings and keep analysis's severity."""


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {r.code: r for r in rules}


RULES: Final[dict[str, Rule]] = _rules(
    # --- registry-specific: the cache form meets a registry that refuses it -------------
    Rule(
        "CS-ECR-INDEX",
        "error",
        "ECR rejects the OCI index cache form",
        "form `index`, target `ecr` or `ecr-public`",
        f"re-export with `{IMAGE_MANIFEST_FLAGS}` (BuildKit >= 0.12; default from 0.21)",
        (AWS_ROADMAP_876, BK_3724, AWS_BLOG, EARTHLY_3714, BK_DOCS),
        "confirmed",
    ),
    Rule(
        "CS-ECR-MLIST",
        "error",
        "ECR rejects the Docker manifest-list cache form",
        "form `docker-manifest-list`, target `ecr` or `ecr-public`",
        f"re-export with `{IMAGE_MANIFEST_FLAGS}`; do not set `oci-mediatypes=false`",
        (BK_2251, BK_699, AWS_ROADMAP_876),
        "confirmed",
    ),
    Rule(
        "CS-ECR-BUILDKIT-OLD",
        "error",
        "BuildKit older than 0.12 cannot write a cache ECR accepts",
        "target `ecr`/`ecr-public` and `--buildkit-version` < 0.12",
        "upgrade BuildKit to >= 0.12 (Docker Engine 25+, or a docker-container builder with a recent "
        "moby/buildkit); alternatives: `type=s3` or `type=inline` cache",
        (AWS_ROADMAP_876, AWS_BLOG, BK_3724),
        "confirmed",
    ),
    Rule(
        "CS-ECR-405-MEDIATYPE",
        "error",
        "ECR rejected the manifest's media types",
        "`--error` text contains `Invalid parameter at 'ImageManifest'` (ECR's media-type validation), target "
        "`ecr`/`ecr-public` or not identified",
        "use standard layer media types (no Docker zstd, no custom `artifactType`); check the BuildKit version",
        (AWS_ROADMAP_2306,),
        "reported",
    ),
    Rule(
        "CS-ECR-MOUNT",
        "info",
        "ECR mounts only blobs a manifest in the source repository references",
        "target `ecr`, a registry cache, and the image pushed to another repository (or not known: `--image`)",
        "keep cache and image in the same repository if upload time matters, or accept the extra upload",
        (AWS_ROADMAP_2860,),
        "confirmed",
    ),
    Rule(
        "CS-GCR-INDEX",
        "error",
        "Legacy gcr.io rejects list cache forms",
        "form `index` or `docker-manifest-list`, target `gcr`",
        f"re-export with `{IMAGE_MANIFEST_FLAGS}`, or move to Artifact Registry",
        (BK_1143, EARTHLY_MATRIX),
        "confirmed",
    ),
    Rule(
        "CS-QUAY-LIST",
        "error",
        "Quay rejects list cache forms ('platform' is a required property)",
        "form `index` or `docker-manifest-list`, target `quay`",
        f"re-export with `{IMAGE_MANIFEST_FLAGS}`; on self-hosted Quay also allow "
        "`application/vnd.buildkit.cacheconfig.v0` in `ALLOWED_OCI_ARTIFACT_TYPES` (see CS-QUAY-CONFIG-TYPE)",
        (BK_1550, BK_1440),
        "confirmed",
    ),
    Rule(
        "CS-QUAY-CONFIG-TYPE",
        "warning",
        "Quay may refuse the BuildKit cache config media type",
        "form `image-manifest`, target `quay` (warning: the rejection is inferred, not observed; error when "
        "`--error` shows Quay refusing the push)",
        "self-hosted Quay: add `application/vnd.buildkit.cacheconfig.v0` with the OCI gzip/zstd layer types to "
        "`ALLOWED_OCI_ARTIFACT_TYPES`; quay.io: unknown, try a push or use another cache backend",
        (QUAY_MEDIATYPES, BK_3610),
        "inferred",
    ),
    Rule(
        "CS-HARBOR-INDEX",
        "error",
        "Harbor answers 404 on the list cache form's manifest PUT",
        "form `index` or `docker-manifest-list` (the latter inferred), target `harbor`",
        f"re-export with `{IMAGE_MANIFEST_FLAGS}`",
        (BK_2479, HARBOR_14774, EARTHLY_MATRIX),
        "confirmed",
    ),
    Rule(
        "CS-DIST3-INDEX",
        "error",
        "distribution v3 rejects list cache forms (MANIFEST_BLOB_UNKNOWN)",
        "form `index` or `docker-manifest-list`, target `distribution3`",
        f"re-export with `{IMAGE_MANIFEST_FLAGS}`, or set `validation.manifests.indexes.platforms: none` "
        "in the registry config (experimental)",
        (DIST_3452, DIST_3863, DIST_V3, DIST_CONFIG),
        "inferred",
    ),
    Rule(
        "CS-GITEA-INDEX",
        "error",
        "Gitea/Forgejo rejects the OCI index cache form",
        "form `index`, target `gitea`",
        f"try `{IMAGE_MANIFEST_FLAGS}`; otherwise use another cache backend",
        (GITEA_28973, GITEA_37093),
        "reported",
    ),
    Rule(
        "CS-ARTIFACTORY-OLD",
        "warning",
        "Artifactory up to 7.31.10 rejects list cache forms",
        "form `index` or `docker-manifest-list`, target `artifactory` (warning: cachescope cannot see the "
        "Artifactory version)",
        f"make sure Artifactory is newer than 7.31.10 (RTFACT-26179), or use `{IMAGE_MANIFEST_FLAGS}`",
        (EARTHLY_MATRIX, BK_2251, JFROG_KB),
        "reported",
    ),
    Rule(
        "CS-NEXUS-OLD",
        "warning",
        "Nexus before 3.22 fails with 500 on the OCI index cache form",
        "form `index`, target `nexus` (warning: cachescope cannot see the Nexus version)",
        f"make sure Nexus is >= 3.22 (NEXUS-18511), or use `{IMAGE_MANIFEST_FLAGS}`",
        (BK_2068, BK_2761),
        "reported",
    ),
    Rule(
        "CS-INDEX-PORTABILITY",
        "warning",
        "List cache form that several registries reject",
        "form `index` or `docker-manifest-list` and no registry-specific rule fired, target unknown or not "
        "known to accept the form",
        f"prefer `{IMAGE_MANIFEST_FLAGS}` (default from BuildKit 0.21)",
        (BK_2251, DIST_3452, BK_5892),
        "confirmed",
    ),
    Rule(
        "CS-UNKNOWN-REGISTRY-STATUS",
        "info",
        "Nobody has published whether this registry accepts this cache form",
        "the target's status for the form is `?` in docs/registries.md",
        "try a push with `buildkitd --debug`; the status here is unknown, not assumed fine",
        (REGISTRIES_DOC,),
        "unknown",
    ),
    Rule(
        "CS-TARGET-UNDETECTED",
        "info",
        "Registry not identified; registry-specific checks skipped",
        "`--target auto` and the host is not a known registry (or the cache is a local directory)",
        "pass `--target NAME` to check against a registry",
        (REGISTRIES_DOC,),
        "unknown",
    ),
    Rule(
        "CS-ZSTD",
        "info",
        "zstd cache layers on a registry with undocumented zstd support",
        "zstd layers (or `compression=zstd`), target other than `quay`",
        "keep gzip unless the registry and every consumer are known to accept zstd",
        (REGISTRIES_DOC, QUAY_MEDIATYPES),
        "unknown",
    ),
    Rule(
        "CS-ESTARGZ",
        "info",
        "estargz cache layers: no registry-specific issue known",
        "estargz layers (or `compression=estargz`)",
        "none needed; listed so the status is visible",
        (REGISTRIES_DOC,),
        "unknown",
    ),
    Rule(
        "CS-CACHE-IN-IMAGE-REPO",
        "warning",
        "Cache tag shares a repository with images",
        "`diagnose REF --scan-repo` finds non-cache tags in the cache's repository, or `--error` text shows "
        "`docker pull` failing on the cache config media type",
        "store the cache in a dedicated repository (or tag prefix) with its own retention rule",
        (HUB_2322, REGISTRIES_DOC),
        "reported",
    ),
    Rule(
        "CS-OPAQUE-400",
        "info",
        "The registry refused the cache manifest; BuildKit hid its error body",
        "`--error` text matches `failed commit on ref ... unexpected status: 4xx` or `unexpected status from PUT "
        "request ... 4xx`",
        "re-run with `buildkitd --debug` (buildx: `--buildkitd-flags '--debug'`) to see the registry's JSON error, "
        "then diagnose again with it",
        (BK_1143, REGISTRIES_DOC),
        "confirmed",
    ),
    Rule(
        "CS-ERROR-UNRECOGNISED",
        "info",
        "The error text matches no known cache failure",
        "`--error` text with none of the signatures above",
        "run with `buildkitd --debug` for the registry's own error body; status unknown, not assumed harmless",
        (REGISTRIES_DOC,),
        "unknown",
    ),
    # --- generic checks on an existing cache -------------------------------------------
    Rule(
        "CS-MANIFEST-SIZE",
        "error",
        "Cache manifest over 4 MiB",
        "wrapper manifest larger than 4 MiB",
        "use `mode=min` or split caches per target/stage with separate refs",
        (OCI_DIST_SPEC, DIST_CONFIG, REGISTRIES_DOC),
        "confirmed",
    ),
    Rule(
        "CS-MIXED-MEDIATYPES",
        "warning",
        "Layer media types from both the OCI and Docker families",
        "layers whose media-type family differs from the wrapper's or from each other",
        "`cachescope reexport SRC DEST --mediatypes oci` rewrites every descriptor in one family",
        (FORMAT_DOC, AWS_ROADMAP_2306),
        "inferred",
    ),
    Rule(
        "CS-BUILDKIT-OLD-IMAGE-MANIFEST",
        "error",
        "BuildKit older than 0.12 cannot import the image-manifest form",
        "form `image-manifest` (or importing from ECR) and `--buildkit-version` < 0.12",
        "upgrade the importing BuildKit to >= 0.12, or re-export in the index form for old consumers",
        (BK_3724, FORMAT_DOC),
        "confirmed",
    ),
    Rule(
        "CS-BLOBS-UNCHECKED",
        "info",
        "Blob presence was not checked",
        "the cache was loaded without checking the store for its layer blobs",
        "run `cachescope diagnose` on the reference (it checks every blob)",
        (FORMAT_DOC,),
        "unknown",
    ),
    # --- planned --cache-to / --cache-from strings -------------------------------------
    Rule(
        "CS-IMAGE-MANIFEST-OCI-FALSE",
        "error",
        "`image-manifest` needs OCI media types",
        "`image-manifest=true` with `oci-mediatypes=false` (any version), or `oci-mediatypes=false` without "
        "`image-manifest=false` on BuildKit 0.21.x",
        "set `oci-mediatypes=true` (or drop it)",
        (BK_5966, BK_DOCS, FORMAT_DOC),
        "confirmed",
    ),
    Rule(
        "CS-COMPRESSION-NO-FORCE",
        "warning",
        "Compression options without force-compression keep existing blobs as they are",
        "`compression` or `compression-level` set and `force-compression` not true",
        "add `force-compression=true`, or `cachescope recompress` the existing cache",
        (BK_2685, FORMAT_DOC),
        "confirmed",
    ),
    Rule(
        "CS-UNKNOWN-OPTION",
        "warning",
        "Option BuildKit does not know for this cache type and direction",
        "a key outside the registry/local option matrix (BuildKit ignores it silently)",
        "fix the spelling or remove it",
        (FORMAT_DOC,),
        "confirmed",
    ),
    Rule(
        "CS-OPTION-IGNORED",
        "warning",
        "Option silently ignored by this BuildKit",
        "option newer than `--buildkit-version`, an invalid `mode`, or an unknown compression on BuildKit 0.10",
        "upgrade BuildKit or correct the value",
        (FORMAT_DOC,),
        "confirmed",
    ),
    Rule(
        "CS-OPTION-INVALID",
        "error",
        "Option value BuildKit refuses",
        "non-boolean value for a bool option, non-integer `compression-level`, unknown `compression` "
        "(BuildKit >= 0.11), missing `ref`/`dest`/`src`",
        "correct the value",
        (FORMAT_DOC, BK_3136),
        "confirmed",
    ),
    Rule(
        "CS-BACKEND-NOT-CHECKED",
        "info",
        "Cache backend without a registry manifest; registry rules do not apply",
        "`type=` other than `registry` or `local`",
        "none",
        (FORMAT_DOC,),
        "confirmed",
    ),
    # --- analysis warnings, carried over unchanged (see core/analysis.py) ---------------
    Rule(
        "CS-IMPORT-1MIB",
        "error",
        "Cache manifest or config over BuildKit's 1 MiB import limit",
        "wrapper or cache config blob larger than 1,048,576 bytes (export succeeds, every import fails)",
        "`mode=min`, fewer stages per ref, or `cachescope trim --max-size`",
        (BK_3719, BK_4916, FORMAT_DOC),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-BLOB-MISSING",
        "error",
        "Layer blob missing from the store",
        "a layer the cache config references is absent from the registry or layout",
        "re-export the cache (results using the blob are silently dropped on import)",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-NO-DIFFID",
        "error",
        "Layer without containerd.io/uncompressed",
        "a layer descriptor lacks its uncompressed digest (builds fail when they hit it)",
        "re-export the cache with a current BuildKit",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-NO-DESCRIPTOR",
        "error",
        "Layer in the cache config but not in the wrapper",
        "config layer without a wrapper descriptor (BuildKit drops every result using it)",
        "re-export the cache",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-SIZE-MISMATCH",
        "error",
        "Stored blob size differs from its descriptor",
        "store size != descriptor size",
        "re-export the cache",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-GRAPH-INVALID",
        "error",
        "Cache config record/layer graph BuildKit rejects",
        "out-of-range links or layers, loops, empty input slots",
        "re-export the cache",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-DOCKER-MEDIATYPES",
        "warning",
        "Docker media types (oci-mediatypes=false)",
        "the wrapper is a Docker manifest list",
        "`cachescope reexport SRC DEST --form image-manifest` (OCI media types)",
        (BK_2251, FORMAT_DOC),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-ZSTD-DOCKER",
        "warning",
        "zstd layers with Docker media types",
        "`application/vnd.docker.image.rootfs.diff.tar.zstd` layers (or `compression=zstd,oci-mediatypes=false`)",
        "use OCI media types (`oci-mediatypes=true`); `cachescope reexport SRC DEST --mediatypes oci`",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-ESTARGZ-DOCKER",
        "warning",
        "estargz layers with Docker media types",
        "estargz layers in a Docker manifest list (or `compression=estargz,oci-mediatypes=false`)",
        "use OCI media types (`oci-mediatypes=true`) so lazy pulling works",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-MIXED-COMPRESSION",
        "warning",
        "Layers use mixed compression",
        "more than one compression among the layer blobs",
        "`cachescope recompress`, or export with `force-compression=true`",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-UNKNOWN-MEDIATYPE",
        "warning",
        "Layer media type is not a layer type",
        "a layer descriptor whose media type BuildKit does not map to a compression",
        "re-export the cache",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-EMPTY-CACHE",
        "warning",
        "Cache config has no layers",
        "no layers in the cache config",
        "check the build exported results (`mode=max`)",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-DUPLICATE-DIFF",
        "info",
        "One layer stored as several blobs",
        "the same uncompressed digest under several blob digests",
        "`cachescope recompress` to one compression",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-RANDOM-RECORD",
        "info",
        "Record with a random: key",
        "a record digest starting with `random:` (BuildKit ignores it)",
        "none",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-DEEP-UNREADABLE",
        "error",
        "Layer blob does not decompress (--deep)",
        "decompression failed",
        "re-export the cache",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-DEEP-COMPRESSION",
        "error",
        "Layer bytes do not match their media type (--deep)",
        "detected compression differs from the declared one",
        "re-export the cache",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
    Rule(
        "CS-DEEP-MISMATCH",
        "error",
        "Layer decompresses to a different diff ID (--deep)",
        "uncompressed digest differs from the annotation",
        "re-export the cache",
        (FORMAT_DOC,),
        "confirmed",
        "analysis",
    ),
)


# --- what each registry accepts ---------------------------------------------------------

Verdict = Literal["accepts", "rejects", "unknown"]


@dataclass(frozen=True, slots=True)
class FormStatus:
    """One cell of docs/registries.md section 2: a registry's answer to one cache form."""

    verdict: Verdict
    basis: Basis
    sources: tuple[str, ...]
    code: str | None = None
    """The rule that fires (for `rejects`, or a version-dependent acceptance)."""
    note: str = ""


def _accepts(basis: Basis, *sources: str, note: str = "") -> FormStatus:
    return FormStatus("accepts", basis, sources, None, note)


def _rejects(code: str, basis: Basis, *sources: str, note: str = "") -> FormStatus:
    return FormStatus("rejects", basis, sources, code, note)


def _unknown(*sources: str, note: str = "", code: str | None = None) -> FormStatus:
    return FormStatus("unknown", "unknown", sources or (REGISTRIES_DOC,), code, note)


# docs/registries.md section 2 ("?" cells are unknown; "? (likely A)" stays unknown).
# Artifactory and Nexus are version-dependent: cachescope cannot see the registry version,
# so they are "unknown" cells whose code is a warning naming the bad versions.
REGISTRY_STATUS: Final[dict[Target, dict[RegistryForm, FormStatus]]] = {
    "ecr": {
        "index": _rejects("CS-ECR-INDEX", "confirmed", AWS_ROADMAP_876, BK_3724, EARTHLY_3714, BK_DOCS),
        "docker-manifest-list": _rejects("CS-ECR-MLIST", "confirmed", BK_2251, AWS_ROADMAP_876),
        "image-manifest": _accepts("confirmed", AWS_BLOG, AWS_ROADMAP_876, note="BuildKit >= 0.12"),
    },
    "ecr-public": {
        "index": _rejects(
            "CS-ECR-INDEX", "inferred", AWS_ROADMAP_876, BK_3724, note="same manifest validation as private ECR"
        ),
        "docker-manifest-list": _rejects("CS-ECR-MLIST", "inferred", BK_2251, AWS_ROADMAP_876),
        "image-manifest": _accepts("inferred", AWS_BLOG),
    },
    "gcr": {
        "index": _rejects("CS-GCR-INDEX", "confirmed", BK_1143, EARTHLY_MATRIX),
        "docker-manifest-list": _rejects("CS-GCR-INDEX", "confirmed", BK_1143),
        "image-manifest": _unknown(BK_1143, note="likely accepted; gcr.io repositories served by Artifact Registry"),
    },
    "gar": {
        "index": _accepts("reported", BK_1143, EARTHLY_MATRIX),
        "docker-manifest-list": _unknown(BK_1143),
        "image-manifest": _unknown(BK_1143, note="likely accepted"),
    },
    "quay": {
        "index": _rejects("CS-QUAY-LIST", "confirmed", BK_1440, BK_1550),
        "docker-manifest-list": _rejects("CS-QUAY-LIST", "confirmed", BK_1550),
        "image-manifest": FormStatus(
            "unknown",
            "inferred",
            (QUAY_MEDIATYPES, BK_3610),
            "CS-QUAY-CONFIG-TYPE",
            "likely rejected on default self-hosted Quay; quay.io unknown",
        ),
    },
    "harbor": {
        "index": _rejects("CS-HARBOR-INDEX", "confirmed", BK_2479, HARBOR_14774),
        "docker-manifest-list": _rejects(
            "CS-HARBOR-INDEX", "inferred", BK_2479, HARBOR_14774, note="not tested; same child resolution"
        ),
        "image-manifest": _accepts("reported", EARTHLY_MATRIX),
    },
    "artifactory": {
        "index": _unknown(EARTHLY_MATRIX, JFROG_KB, code="CS-ARTIFACTORY-OLD", note="accepted after 7.31.10"),
        "docker-manifest-list": _unknown(EARTHLY_MATRIX, code="CS-ARTIFACTORY-OLD"),
        "image-manifest": _unknown(EARTHLY_MATRIX, note="likely accepted"),
    },
    "acr": {
        "index": _accepts("reported", BK_2251, EARTHLY_MATRIX),
        "docker-manifest-list": _unknown(BK_2251),
        "image-manifest": _unknown(BK_2251, note="likely accepted"),
    },
    "ghcr": {
        "index": _accepts("confirmed", BK_1865, note="since 2020-12-11"),
        "docker-manifest-list": _unknown(BK_1865),
        "image-manifest": _unknown(BK_1865, note="likely accepted"),
    },
    "dockerhub": {
        "index": _accepts("reported", BK_2251, HUB_2322),
        "docker-manifest-list": _accepts("inferred", BK_2251, note="the historic default form"),
        "image-manifest": _unknown(BK_2251, note="likely accepted"),
    },
    "gitlab": {
        "index": _accepts("confirmed", BK_2251, GITLAB_414, note="only through distribution's 2.1.1 workaround"),
        "docker-manifest-list": _unknown(BK_2251),
        "image-manifest": _accepts(
            "inferred", GITLAB_REGISTRY, note="cache config type in the metadata database's media-type table"
        ),
    },
    "nexus": {
        "index": _unknown(BK_2068, BK_2761, code="CS-NEXUS-OLD", note="accepted on 3.22+"),
        "docker-manifest-list": _unknown(BK_2068),
        "image-manifest": _unknown(BK_2068),
    },
    "gitea": {
        "index": _rejects("CS-GITEA-INDEX", "reported", GITEA_28973, GITEA_37093),
        "docker-manifest-list": _unknown(GITEA_28973),
        "image-manifest": _unknown(GITEA_28973),
    },
    "zot": {
        "index": _unknown(ZOT_140),
        "docker-manifest-list": _unknown(ZOT_140),
        "image-manifest": _accepts("reported", ZOT_140),
    },
    "distribution": {
        "index": _accepts("confirmed", DIST_3452, note="through the 2.1.1 workaround, removed in v3"),
        "docker-manifest-list": _accepts("inferred", DIST_3452),
        "image-manifest": _accepts("confirmed", DIST_3452),
    },
    "distribution3": {
        "index": _rejects("CS-DIST3-INDEX", "inferred", DIST_3452, DIST_3863, DIST_V3),
        "docker-manifest-list": _rejects("CS-DIST3-INDEX", "inferred", DIST_3452, DIST_V3),
        "image-manifest": _accepts("inferred", DIST_V3),
    },
}

ZSTD_KNOWN_OK: Final[frozenset[Target]] = frozenset({"quay"})
"""Targets documented to accept zstd layers (Red Hat Quay 3.6+, registries.md section 3)."""


# --- host-name detection (registries.md section 5) --------------------------------------

_HOST_PATTERNS: Final[tuple[tuple[re.Pattern[str], Target], ...]] = (
    (re.compile(r"[0-9]{12}\.dkr\.ecr(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?"), "ecr"),
    (re.compile(r"[0-9]{12}\.dkr-ecr(?:-fips)?\.[a-z0-9-]+\.on\.aws"), "ecr"),  # dual-stack endpoints
    (re.compile(r"public\.ecr\.aws"), "ecr-public"),
    (re.compile(r"(?:[a-z0-9-]+\.)?gcr\.io"), "gcr"),
    (re.compile(r"[a-z0-9-]+-docker\.pkg\.dev"), "gar"),
    (re.compile(r"quay\.io"), "quay"),
    (re.compile(r"ghcr\.io"), "ghcr"),
    (re.compile(r"(?:docker\.io|registry-1\.docker\.io|index\.docker\.io)"), "dockerhub"),
    (re.compile(r"[a-z0-9-]+\.azurecr\.(?:io|cn|us)"), "acr"),
    (re.compile(r"registry\.gitlab\.com"), "gitlab"),
)


def detect_target(host: str) -> Target | None:
    """The registry a host name belongs to, or None when only probing or the user could tell.

    Self-hosted products (Harbor, Artifactory, Nexus, distribution, Zot, Gitea) have no
    recognisable host names, so they are never guessed.
    """
    name = host.strip().lower().rstrip(".")
    if name.startswith("["):
        return None
    name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    for pattern, target in _HOST_PATTERNS:
        if pattern.fullmatch(name):
            return target
    return None


def render_rules_markdown() -> str:
    """The README findings table, generated from `RULES` so the two cannot drift."""
    lines = [
        "| Code | Severity | Trigger | Fix | Basis | Source |",
        "|---|---|---|---|---|---|",
    ]
    for rule in RULES.values():
        sources = ", ".join(_link(s) for s in rule.sources)
        origin = " (analysis)" if rule.origin == "analysis" else ""
        lines.append(
            f"| `{rule.code}`{origin} | {rule.severity} | {rule.trigger} | {rule.fix} | {rule.basis} | {sources} |"
        )
    return "\n".join(lines) + "\n"


def _link(source: str) -> str:
    if not source.startswith("http"):
        return source
    match = re.search(r"github\.com/([^/]+/[^/]+)/(issues|pull)/(\d+)", source)
    label = f"{match.group(1)}#{match.group(3)}" if match else re.sub(r"^https?://", "", source).split("/")[0]
    return f"[{label}]({source})"


_DETECTED_HOSTS: Final[dict[Target, str]] = {
    "ecr": "`*.dkr.ecr.*.amazonaws.com`, `*.dkr-ecr.*.on.aws`",
    "ecr-public": "`public.ecr.aws`",
    "gcr": "`gcr.io`, `*.gcr.io`",
    "gar": "`*-docker.pkg.dev`",
    "quay": "`quay.io`",
    "ghcr": "`ghcr.io`",
    "dockerhub": "`docker.io`, `registry-1.docker.io`",
    "acr": "`*.azurecr.io`",
    "gitlab": "`registry.gitlab.com`",
}


def render_targets_markdown() -> str:
    """The README table of targets: how each is detected and what it does with each form."""
    lines = [
        "| `--target` | Registry | Detected from host | `index` | `docker-manifest-list` | `image-manifest` "
        "| Sources |",
        "|---|---|---|---|---|---|---|",
    ]
    for target in TARGETS:
        cells = []
        for form in ("index", "docker-manifest-list", "image-manifest"):
            status = REGISTRY_STATUS[target][form]
            text = status.verdict if status.basis == "unknown" else f"{status.verdict} ({status.basis})"
            if status.code:
                text += f" `{status.code}`"
            cells.append(text)
        host = _DETECTED_HOSTS.get(target, "never (self-hosted; pass `--target`)")
        sources = dict.fromkeys(s for status in REGISTRY_STATUS[target].values() for s in status.sources)
        cells.append(", ".join(_link(s) for s in sources))
        lines.append(f"| `{target}` | {TARGET_NAMES[target]} | {host} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_GENERATED: Final = re.compile(
    r"(<!-- generated by cachescope\.core\.registry_rules\.(\w+)\(\); do not edit -->\n)(.*?)(<!-- end generated -->)",
    re.S,
)


def fill_generated_blocks(text: str) -> str:
    """`text` with every generated README block re-rendered; the README part is kept in sync with this.

    Regenerate with:
    `python -c "import pathlib as p, cachescope.core.registry_rules as r; f = p.Path('README.md');
    f.write_text(r.fill_generated_blocks(f.read_text()))"`
    """
    renderers = {"render_rules_markdown": render_rules_markdown, "render_targets_markdown": render_targets_markdown}

    def fill(match: re.Match[str]) -> str:
        render = renderers.get(match.group(2))
        if render is None:
            raise ValueError(f"unknown generated block {match.group(2)!r}")
        return match.group(1) + render() + match.group(4)

    return _GENERATED.sub(fill, text)
