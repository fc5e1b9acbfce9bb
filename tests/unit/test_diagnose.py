"""Diagnosis rules on genuine BuildKit exports, planned option strings and error texts.

Expectations are written out from docs/registries.md (sections 2 and 5) and
docs/buildkit-cache-format.md (3.4, 5, 8), not read back from `REGISTRY_STATUS`, so a
rule that drifts from the documents fails here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
from pathlib import Path
from typing import Any

import pytest

from cachescope.core import CacheReport, LayoutRef, LoadedCache, UsageError, analyze, inspect, read_cache
from cachescope.core.diagnose import (
    CURRENT_BUILDKIT,
    JSON_SCHEMA,
    BuildkitVersion,
    Finding,
    diagnose,
    diagnose_error_text,
    diagnose_report,
    diagnose_spec,
    exit_code,
    findings_to_json,
    manifest_too_large,
    planned_form,
    resolve_target,
)
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.reference import parse_buildx_spec, parse_registry_ref
from cachescope.core.registry_rules import (
    RULES,
    TARGETS,
    Target,
    detect_target,
    fill_generated_blocks,
    render_rules_markdown,
    render_targets_markdown,
)
from tests.conftest import CATALOG, FIXTURES, fixture_dir

README_PART = Path(__file__).resolve().parents[2] / "README.md"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"

# --- what docs/registries.md says, written out by hand --------------------------------------

# Section 2 "R" cells and the section 5 rule each one fires (Artifactory/Nexus: version-
# dependent, and Quay image-manifest: inferred, but each has its own rule).
REJECTS: dict[tuple[str, str], str] = {
    ("ecr", "index"): "CS-ECR-INDEX",
    ("ecr", "docker-manifest-list"): "CS-ECR-MLIST",
    ("ecr-public", "index"): "CS-ECR-INDEX",
    ("ecr-public", "docker-manifest-list"): "CS-ECR-MLIST",
    ("gcr", "index"): "CS-GCR-INDEX",
    ("gcr", "docker-manifest-list"): "CS-GCR-INDEX",
    ("quay", "index"): "CS-QUAY-LIST",
    ("quay", "docker-manifest-list"): "CS-QUAY-LIST",
    ("quay", "image-manifest"): "CS-QUAY-CONFIG-TYPE",
    ("harbor", "index"): "CS-HARBOR-INDEX",
    ("harbor", "docker-manifest-list"): "CS-HARBOR-INDEX",
    ("artifactory", "index"): "CS-ARTIFACTORY-OLD",
    ("artifactory", "docker-manifest-list"): "CS-ARTIFACTORY-OLD",
    ("nexus", "index"): "CS-NEXUS-OLD",
    ("gitea", "index"): "CS-GITEA-INDEX",
    ("distribution3", "index"): "CS-DIST3-INDEX",
    ("distribution3", "docker-manifest-list"): "CS-DIST3-INDEX",
}
# Section 2 "A" cells (any basis); every other cell is "?" and must be reported unknown.
ACCEPTS: set[tuple[str, str]] = {
    ("ecr", "image-manifest"),
    ("ecr-public", "image-manifest"),
    ("gar", "index"),
    ("harbor", "image-manifest"),
    ("acr", "index"),
    ("ghcr", "index"),
    ("dockerhub", "index"),
    ("dockerhub", "docker-manifest-list"),
    ("gitlab", "index"),
    ("gitlab", "image-manifest"),  # section 3: the metadata DB lists the cache config type
    ("zot", "image-manifest"),
    ("distribution", "index"),
    ("distribution", "docker-manifest-list"),
    ("distribution", "image-manifest"),
    ("distribution3", "image-manifest"),
}
LIST_FORMS = {"index", "docker-manifest-list"}
ERROR_CODES = {code for code, rule in RULES.items() if rule.severity == "error"}


def expected_codes(fixture: dict[str, Any], tag: str, target: Target | None) -> set[str]:
    """The codes the documented rules give a catalogued fixture (local store, BuildKit current)."""
    exp = fixture["expected"]
    if "by_tag" in exp:
        exp = {**exp, **exp["by_tag"].get(tag, {})}
    form, family = exp["form"], exp["mediatypes"]
    layers = exp["layers"]
    compressions = {layer["compression"] for layer in layers}
    codes: set[str] = set()
    if form != "inline":
        if target is None:
            codes |= {"CS-INDEX-PORTABILITY"} if form in LIST_FORMS else set()
        elif (target, form) in REJECTS:
            codes.add(REJECTS[(target, form)])
        elif (target, form) not in ACCEPTS:
            codes.add("CS-UNKNOWN-REGISTRY-STATUS")
            if form in LIST_FORMS:
                codes.add("CS-INDEX-PORTABILITY")  # no registry-specific rule fired
        if target == "ecr":
            codes.add("CS-ECR-MOUNT")
    if target is None:
        codes.add("CS-TARGET-UNDETECTED")  # a local directory has no host to detect
    if "zstd" in compressions and target != "quay":  # only Quay documents zstd support
        codes.add("CS-ZSTD")
    if "estargz" in compressions:
        codes.add("CS-ESTARGZ")
    # The cache's own problems (analysis), from the catalogue's facts.
    if family == "docker":
        codes.add("CS-DOCKER-MEDIATYPES")
        if "zstd" in compressions:
            codes.add("CS-ZSTD-DOCKER")
        if "estargz" in compressions:
            codes.add("CS-ESTARGZ-DOCKER")
    if len(compressions) > 1:
        codes.add("CS-MIXED-COMPRESSION")
    diff_ids = [layer["uncompressed_digest"] for layer in {x["digest"]: x for x in layers}.values()]
    if len(diff_ids) != len(set(diff_ids)):
        codes.add("CS-DUPLICATE-DIFF")
    return codes


@functools.cache
def _report(name: str, tag: str) -> CacheReport:
    return asyncio.run(inspect(LayoutRef(fixture_dir(name), tag)))


FIXTURE_TAGS = [(f["name"], tag) for f in CATALOG["fixtures"] for tag in f["tags"]]
TARGET_CASES: list[Target | None] = [*TARGETS, None]


def test_the_catalogue_covers_every_form() -> None:
    assert {f["expected"]["form"] for f in CATALOG["fixtures"]} == {
        "index",
        "image-manifest",
        "docker-manifest-list",
        "inline",
    }


@pytest.mark.parametrize(("name", "tag"), FIXTURE_TAGS, ids=[f"{n}:{t}" for n, t in FIXTURE_TAGS])
@pytest.mark.parametrize("target", TARGET_CASES, ids=[t or "none" for t in TARGET_CASES])
def test_fixture_times_target_gives_the_documented_codes(name: str, tag: str, target: Target | None) -> None:
    report = _report(name, tag)
    findings = diagnose_report(report, target)
    codes = {f.code for f in findings}
    assert codes == expected_codes(FIXTURES[name], tag, target)
    for f in findings:
        assert f.severity == RULES[f.code].severity, f.code
        assert f.evidence
        assert f.message
    assert exit_code(findings) == (1 if codes & ERROR_CODES else 0)
    form_rules = [f for f in findings if f.code in REJECTS.values() and f.code != "CS-QUAY-CONFIG-TYPE"]
    for f in form_rules:
        assert f.fix_buildx is not None
        assert "image-manifest=true,oci-mediatypes=true" in f.fix_buildx
        assert f.fix_command == f"cachescope reexport {report.source} DEST --form image-manifest"
        assert report.manifest_digest.short in f.evidence


def test_registry_rules_come_before_portability_and_errors_sort_first() -> None:
    findings = diagnose_report(_report("max-index", "latest"), "nexus")
    assert [f.code for f in findings] == ["CS-NEXUS-OLD"]  # no CS-INDEX-PORTABILITY next to it
    findings = diagnose_report(_report("max-docker-zstd", "latest"), "ecr")
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    assert findings[0].code == "CS-ECR-MLIST"


def test_unknown_status_is_never_reported_as_fine() -> None:
    findings = diagnose_report(_report("max-default", "latest"), "acr")
    unknown = [f for f in findings if f.code == "CS-UNKNOWN-REGISTRY-STATUS"]
    assert len(unknown) == 1
    assert "unknown" in unknown[0].message
    assert unknown[0].basis == "unknown"
    # ...and JSON says so next to the findings.
    doc = findings_to_json(
        findings,
        target="acr",
        target_detected_from="--target",
        buildkit_version=CURRENT_BUILDKIT,
        form="image-manifest",
    )
    assert doc["compatibility"]["verdict"] == "unknown"


def test_strict_fails_on_warnings_only_when_asked() -> None:
    findings = diagnose_report(_report("max-index", "latest"), None)
    assert {f.severity for f in findings} == {"warning", "info"}
    assert exit_code(findings) == 0
    assert exit_code(findings, strict=True) == 1
    infos_only = diagnose_report(_report("max-default", "latest"), "ecr")
    assert {f.severity for f in infos_only} == {"info"}
    assert exit_code(infos_only, strict=True) == 0


def test_zstd_fix_names_the_recompress_command() -> None:
    findings = diagnose_report(_report("max-zstd", "latest"), "ghcr")
    zstd = next(f for f in findings if f.code == "CS-ZSTD")
    assert zstd.fix_command == f"cachescope recompress {_report('max-zstd', 'latest').source} --compression gzip"
    mixed = next(f for f in diagnose_report(_report("mixed-after-conversions", "latest"), "ghcr"))
    assert mixed.code == "CS-MIXED-COMPRESSION"
    assert mixed.fix_command is not None
    assert mixed.fix_command.startswith("cachescope recompress ")


# --- generic checks (any target) ---------------------------------------------------------


async def _loaded(name: str) -> LoadedCache:
    return await read_cache(LayoutRef(fixture_dir(name), "latest"))


async def test_config_over_the_import_limit_is_an_error() -> None:
    cache = await _loaded("max-default")
    assert cache.config_descriptor is not None
    big = dataclasses.replace(cache, config_descriptor=dataclasses.replace(cache.config_descriptor, size=1048577))
    findings = diagnose_report(big, "ghcr")
    assert "CS-IMPORT-1MIB" in {f.code for f in findings}
    assert exit_code(findings) == 1
    assert "CS-IMPORT-1MIB" not in {f.code for f in diagnose_report(cache, "ghcr")}


async def test_manifest_over_4mib_is_an_error() -> None:
    report = analyze(await _loaded("max-default"))
    assert "CS-MANIFEST-SIZE" not in {f.code for f in diagnose_report(report, "ghcr")}
    big = dataclasses.replace(report, manifest_size=4 * 1024 * 1024 + 1)
    found = [f for f in diagnose_report(big, "ghcr") if f.code == "CS-MANIFEST-SIZE"]
    assert len(found) == 1
    assert found[0].severity == "error"
    assert manifest_too_large("manifest x is too large", "oci:d")[0].code == "CS-MANIFEST-SIZE"


async def test_missing_blob_and_missing_diff_id_are_errors(copy_fixture) -> None:
    path = copy_fixture("max-image-manifest")
    layer = FIXTURES["max-image-manifest"]["expected"]["layers"][0]["digest"]
    (path / "blobs" / "sha256" / layer.split(":")[1]).unlink()
    report = await inspect(LayoutRef(path, "latest"))
    missing = [f for f in diagnose_report(report, "ghcr") if f.code == "CS-BLOB-MISSING"]
    assert len(missing) == 1
    assert layer in missing[0].evidence
    assert missing[0].fix_command == f"cachescope verify {report.source}"

    cache = await _loaded("max-default")
    stripped = {
        d: dataclasses.replace(desc, annotations={k: v for k, v in desc.annotations.items() if "uncompressed" not in k})
        for d, desc in cache.layer_descriptors.items()
    }
    findings = diagnose_report(dataclasses.replace(cache, layer_descriptors=stripped), "ghcr")
    assert "CS-NO-DIFFID" in {f.code for f in findings}


async def test_mixed_media_type_families_are_flagged() -> None:
    report = analyze(await _loaded("max-default"))
    assert "CS-MIXED-MEDIATYPES" not in {f.code for f in diagnose_report(report, "ghcr")}
    odd = dataclasses.replace(report.layers[2], media_type=mt.DOCKER_LAYER_GZIP)
    mixed = dataclasses.replace(report, layers=(*report.layers[:2], odd, *report.layers[3:]))
    found = [f for f in diagnose_report(mixed, "ghcr") if f.code == "CS-MIXED-MEDIATYPES"]
    assert len(found) == 1
    assert odd.digest.short in found[0].evidence
    assert found[0].fix_command == f"cachescope reexport {report.source} DEST --mediatypes oci"


@pytest.mark.parametrize(
    ("name", "version", "fires"),
    [
        ("max-image-manifest", "v0.11.6", True),
        ("max-image-manifest", "v0.12.0", False),
        ("max-index", "v0.11.6", False),  # v0.11 reads the index form
        ("inline", "v0.11.6", False),
    ],
)
def test_image_manifest_caches_need_buildkit_0_12_to_import(name: str, version: str, fires: bool) -> None:
    findings = diagnose_report(_report(name, "latest"), "ghcr", buildkit_version=BuildkitVersion.parse(version))
    assert ("CS-BUILDKIT-OLD-IMAGE-MANIFEST" in {f.code for f in findings}) is fires


@pytest.mark.parametrize(("name", "fires"), [("max-index", True), ("max-default", True), ("inline", False)])
def test_old_buildkit_cannot_write_a_cache_ecr_takes(name: str, fires: bool) -> None:
    findings = diagnose_report(_report(name, "latest"), "ecr", buildkit_version=BuildkitVersion.parse("0.11"))
    assert ("CS-ECR-BUILDKIT-OLD" in {f.code for f in findings}) is fires


def test_cache_next_to_images_is_a_warning() -> None:
    report = _report("max-default", "latest")
    findings = diagnose_report(report, "ghcr", non_cache_tags=["v1", "v2"])
    found = [f for f in findings if f.code == "CS-CACHE-IN-IMAGE-REPO"]
    assert len(found) == 1
    assert "v1, v2" in found[0].message
    assert "CS-CACHE-IN-IMAGE-REPO" not in {f.code for f in diagnose_report(report, "ghcr", non_cache_tags=[])}


# --- host-name detection -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ecr"),
        ("123456789012.dkr.ecr.us-gov-west-1.amazonaws.com", "ecr"),
        ("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "ecr"),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "ecr"),
        ("123456789012.dkr-ecr.eu-west-1.on.aws", "ecr"),
        ("123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM", "ecr"),
        ("public.ecr.aws", "ecr-public"),
        ("gcr.io", "gcr"),
        ("eu.gcr.io", "gcr"),
        ("us-docker.pkg.dev", "gar"),
        ("europe-west4-docker.pkg.dev", "gar"),
        ("quay.io", "quay"),
        ("ghcr.io", "ghcr"),
        ("ghcr.io:443", "ghcr"),
        ("docker.io", "dockerhub"),
        ("registry-1.docker.io", "dockerhub"),
        ("myregistry.azurecr.io", "acr"),
        ("registry.gitlab.com", "gitlab"),
        # Self-hosted products and look-alikes are never guessed.
        ("localhost:5000", None),
        ("127.0.0.1:5000", None),
        ("[::1]:5000", None),
        ("harbor.example.com", None),
        ("dkr.ecr.eu-west-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example", None),
        ("notgcr.io", None),
        ("docker.pkg.dev", None),
        ("azurecr.io", None),
        ("gitlab.example.com", None),
        ("quay.io.example.com", None),
    ],
)
def test_host_detection(host: str, target: str | None) -> None:
    assert detect_target(host) == target


@pytest.mark.parametrize(
    ("text", "target"),
    [
        (f"{ECR}:cache", "ecr"),
        ("ubuntu:latest", "dockerhub"),  # Docker's normalisation puts it on docker.io
        ("quay.io/org/app:cache", "quay"),
        ("localhost:5000/app:cache", None),
    ],
)
def test_auto_target_follows_the_reference_host(text: str, target: str | None) -> None:
    ref = parse_registry_ref(text)
    assert resolve_target("auto", ref) == (target, ref.host if target else None)
    assert resolve_target("harbor", ref) == ("harbor", "--target")


def test_auto_on_a_local_directory_detects_nothing_and_says_so() -> None:
    assert resolve_target("auto", LayoutRef(fixture_dir("max-index"))) == (None, None)
    with pytest.raises(UsageError, match="unknown target"):
        resolve_target("nosuch", None)


def test_the_tui_entry_point_takes_target_names() -> None:
    report = _report("max-index", "latest")
    assert [f.code for f in diagnose(report, "harbor")] == ["CS-HARBOR-INDEX"]
    assert {f.code for f in diagnose(report, "auto")} == {"CS-INDEX-PORTABILITY", "CS-TARGET-UNDETECTED"}
    finding = diagnose(report, "ecr")[0]
    assert finding.subject == finding.evidence
    assert "image-manifest=true" in finding.fix
    assert "repair: cachescope reexport" in finding.fix


# --- BuildKit versions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("v0.12", (0, 12, 0)), ("0.21.3", (0, 21, 3)), ("v0.13.0-rc1", (0, 13, 0)), (" v1.0 ", (1, 0, 0))],
)
def test_buildkit_versions_parse(text: str, parsed: tuple[int, int, int]) -> None:
    v = BuildkitVersion.parse(text)
    assert (v.major, v.minor, v.patch) == parsed


@pytest.mark.parametrize("text", ["", "latest", "12", "v0.x", "0.12.1.2"])
def test_bad_buildkit_versions_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="invalid BuildKit version"):
        BuildkitVersion.parse(text)


def test_current_buildkit_is_the_fixtures_release() -> None:
    assert BuildkitVersion.parse(CATALOG["buildkit_version"]) >= CURRENT_BUILDKIT
    assert BuildkitVersion.parse(CATALOG["buildkit_version"]) < BuildkitVersion(0, 33)


# --- planned --cache-to / --cache-from strings -------------------------------------------


def _spec_codes(text: str, target: Target | None, version: str = "v0.32", direction: str = "to") -> set[str]:
    spec = parse_buildx_spec(text, "to" if direction == "to" else "from")
    return {f.code for f in diagnose_spec(spec, target, BuildkitVersion.parse(version))}


R = "type=registry,ref=" + ECR + ":cache,mode=max"
RQ = "type=registry,ref=quay.io/org/app:cache,mode=max"
RX = "type=registry,ref=cache.example.com/app:cache,mode=max"
IM = "image-manifest=true,oci-mediatypes=true"

# (code, target, BuildKit version, direction, failing string, passing string)
SPEC_RULES: list[tuple[str, Target | None, str, str, str, str]] = [
    ("CS-ECR-INDEX", "ecr", "v0.32", "to", f"{R},image-manifest=false", f"{R},{IM}"),
    ("CS-ECR-INDEX", "ecr", "v0.20", "to", R, f"{R},{IM}"),  # index was the default before 0.21
    ("CS-ECR-MLIST", "ecr", "v0.32", "to", f"{R},oci-mediatypes=false", R),
    ("CS-ECR-BUILDKIT-OLD", "ecr", "v0.11", "to", f"{R},{IM}", f"{R},{IM}|v0.12"),
    ("CS-ECR-MOUNT", "ecr", "v0.32", "to", R, f"{R}|ghcr"),
    ("CS-GCR-INDEX", "gcr", "v0.32", "to", f"{R},image-manifest=false", R),
    ("CS-QUAY-LIST", "quay", "v0.32", "to", f"{RQ},image-manifest=false", RQ),
    ("CS-QUAY-CONFIG-TYPE", "quay", "v0.32", "to", RQ, f"{RQ}|ghcr"),
    ("CS-HARBOR-INDEX", "harbor", "v0.32", "to", f"{RX},oci-mediatypes=false", RX),
    ("CS-DIST3-INDEX", "distribution3", "v0.32", "to", f"{RX},image-manifest=false", RX),
    ("CS-GITEA-INDEX", "gitea", "v0.32", "to", f"{RX},image-manifest=false", RX),
    ("CS-ARTIFACTORY-OLD", "artifactory", "v0.32", "to", f"{RX},image-manifest=false", RX),
    ("CS-NEXUS-OLD", "nexus", "v0.32", "to", f"{RX},image-manifest=false", RX),
    ("CS-INDEX-PORTABILITY", None, "v0.32", "to", f"{RX},image-manifest=false", RX),
    ("CS-UNKNOWN-REGISTRY-STATUS", "acr", "v0.32", "to", RX, f"{RX},image-manifest=false"),
    ("CS-TARGET-UNDETECTED", None, "v0.32", "to", RX, f"{RX}|ghcr"),
    ("CS-IMAGE-MANIFEST-OCI-FALSE", "ghcr", "v0.32", "to", f"{RX},image-manifest=true,oci-mediatypes=false", f"{RX},{IM}"),
    ("CS-IMAGE-MANIFEST-OCI-FALSE", "ghcr", "v0.21.2", "to", f"{RX},oci-mediatypes=false", f"{RX},oci-mediatypes=false|v0.22"),
    ("CS-DOCKER-MEDIATYPES", "ghcr", "v0.32", "to", f"{RX},oci-mediatypes=false", RX),
    ("CS-ESTARGZ-DOCKER", "ghcr", "v0.32", "to",
     f"{RX},compression=estargz,force-compression=true,oci-mediatypes=false",
     f"{RX},compression=estargz,force-compression=true,oci-mediatypes=true"),
    ("CS-ZSTD-DOCKER", "ghcr", "v0.32", "to",
     f"{RX},compression=zstd,force-compression=true,oci-mediatypes=false",
     f"{RX},compression=zstd,force-compression=true"),
    ("CS-ZSTD", "ghcr", "v0.32", "to", f"{RX},compression=zstd,force-compression=true", f"{RX},compression=gzip"),
    ("CS-ESTARGZ", "ghcr", "v0.32", "to", f"{RX},compression=estargz,force-compression=true", RX),
    ("CS-COMPRESSION-NO-FORCE", "ghcr", "v0.32", "to", f"{RX},compression=zstd",
     f"{RX},compression=zstd,force-compression=true"),
    ("CS-COMPRESSION-NO-FORCE", "ghcr", "v0.32", "to", f"{RX},compression-level=9",
     f"{RX},compression-level=9,force-compression="),  # empty value means true
    ("CS-UNKNOWN-OPTION", "ghcr", "v0.32", "to", f"{RX},image-manfest=true", f"{RX},image-manifest=true"),
    ("CS-UNKNOWN-OPTION", "ghcr", "v0.32", "from", f"{RX}", "type=registry,ref=cache.example.com/app:cache"),
    ("CS-OPTION-IGNORED", "ghcr", "v0.32", "to", "type=registry,ref=h.example/a:c,mode=maximum", RX),
    ("CS-OPTION-IGNORED", "ghcr", "v0.11", "to", f"{RX},image-manifest=true", RX),
    ("CS-OPTION-INVALID", "ghcr", "v0.32", "to", f"{RX},compression=brotli", f"{RX},compression=gzip"),
    ("CS-OPTION-INVALID", "ghcr", "v0.32", "to", f"{RX},oci-mediatypes=yes", f"{RX},oci-mediatypes=1"),
    ("CS-OPTION-INVALID", "ghcr", "v0.32", "to", f"{RX},compression-level=high", f"{RX},compression-level=3"),
    ("CS-OPTION-INVALID", None, "v0.32", "to", "type=local,mode=max", "type=local,dest=/tmp/c,mode=max"),
    ("CS-BACKEND-NOT-CHECKED", "ghcr", "v0.32", "to", "type=gha,mode=max", RX),
    ("CS-BUILDKIT-OLD-IMAGE-MANIFEST", "ecr", "v0.11", "from", f"type=registry,ref={ECR}:cache",
     f"type=registry,ref={ECR}:cache|v0.12"),
]  # fmt: skip


@pytest.mark.parametrize("case", SPEC_RULES, ids=[f"{r[0]}-{i}" for i, r in enumerate(SPEC_RULES)])
def test_each_option_string_rule_fails_and_passes(case: tuple[str, Target | None, str, str, str, str]) -> None:
    code, target, version, direction, failing, passing = case
    assert code in _spec_codes(failing, target, version, direction)
    # "STRING|override": the passing case changes the target or the version instead.
    text, _, override = passing.partition("|")
    if override.startswith("v"):
        version = override
    elif override:
        target = override  # type: ignore[assignment]
    assert code not in _spec_codes(text, target, version, direction)


def test_a_good_string_for_ecr_has_no_errors_or_warnings() -> None:
    spec = parse_buildx_spec(f"{R},{IM}", "to")
    findings = diagnose_spec(spec, "ecr")
    assert {f.code for f in findings} == {"CS-ECR-MOUNT"}
    assert exit_code(findings, strict=True) == 0


def test_the_ecr_mount_note_is_only_for_an_image_in_another_repository() -> None:
    spec = parse_buildx_spec(f"{R},{IM}", "to")
    assert [f.code for f in diagnose_spec(spec, "ecr")] == ["CS-ECR-MOUNT"]  # where the image goes is not known
    assert diagnose_spec(spec, "ecr", image=f"{ECR}:v1.2") == []  # the cache's own repository
    elsewhere = diagnose_spec(spec, "ecr", image=f"{ECR}-images:v1.2")
    assert [f.code for f in elsewhere] == ["CS-ECR-MOUNT"]
    assert elsewhere[0].evidence.endswith(f"; image {ECR}-images")
    assert "CS-ECR-MOUNT" not in {f.code for f in diagnose_spec(spec, "ghcr", image=f"{ECR}-images:v1.2")}


def test_option_fixes_are_rewritten_strings_that_pass() -> None:
    spec = parse_buildx_spec(f"{R},image-manifest=false", "to")
    finding = next(f for f in diagnose_spec(spec, "ecr") if f.code == "CS-ECR-INDEX")
    assert finding.fix_buildx is not None
    assert finding.fix_buildx.startswith("--cache-to type=registry,ref=")
    fixed = finding.fix_buildx.removeprefix("--cache-to ")
    assert "image-manifest=true" in fixed
    assert "oci-mediatypes=true" in fixed
    assert "mode=max" in fixed
    assert exit_code(diagnose_spec(parse_buildx_spec(fixed, "to"), "ecr"), strict=True) == 0


@pytest.mark.parametrize("fixture", list(CATALOG["fixtures"]), ids=lambda f: f["name"])
def test_planned_form_matches_what_buildkit_wrote(fixture: dict[str, Any]) -> None:
    """Each fixture's real export options predict the form BuildKit actually wrote."""
    version = BuildkitVersion.parse(fixture["buildkit_version"])
    options = fixture["options"].replace("DIR", "/tmp/x").replace("tag=main|feature", "tag=main")
    expected = fixture["expected"]["form"]
    assert planned_form(parse_buildx_spec(options, "to"), version) == (None if expected == "inline" else expected)


@pytest.mark.parametrize("rejected", CATALOG["rejected_options"], ids=lambda r: r["name"])
def test_options_buildkit_rejected_are_errors(rejected: dict[str, str]) -> None:
    spec = parse_buildx_spec(rejected["options"].replace("DIR", "/tmp/x"), "to")
    version = BuildkitVersion.parse(CATALOG["buildkit_version"])
    findings = diagnose_spec(spec, "distribution", version)
    assert "CS-IMAGE-MANIFEST-OCI-FALSE" in {f.code for f in findings}
    assert exit_code(findings) == 1
    assert planned_form(spec, version) is None


@pytest.mark.parametrize("export", CATALOG["registry_exports"], ids=lambda e: e["name"])
def test_registry_export_strings_predict_the_pushed_media_type(export: dict[str, Any]) -> None:
    form = planned_form(parse_buildx_spec(export["export_cache"], "to"), BuildkitVersion.parse("v0.32.2"))
    assert {"index": mt.OCI_INDEX, "image-manifest": mt.OCI_MANIFEST}[str(form)] == export["manifest_media_type"]


# --- error text ----------------------------------------------------------------------------

GCR_BODY = (
    '{"errors":[{"code":"MANIFEST_INVALID","message":"Failed to parse manifest for request \\"/v2/p/manifests/cache\\": '
    'Image index child manifest not supported: application/vnd.oci.image.layer.v1.tar+gzip."}]}'
)
OPAQUE = 'error writing manifest blob: failed commit on ref "sha256:0123abcd": unexpected status: {status}'


@pytest.mark.parametrize(
    ("text", "target", "code"),
    [
        (GCR_BODY, None, "CS-GCR-INDEX"),
        ("MalformedSchema2ManifestList: manifest data does not match schema: 'platform' is a required property",
         "quay", "CS-QUAY-LIST"),
        ('err.code="manifest blob unknown" err.message="blob unknown to registry"', None, "CS-DIST3-INDEX"),
        ("java.lang.NullPointerException: Cannot get property 'digest' on null object", "nexus", "CS-NEXUS-OLD"),
        ("blob sha256:ab is too large (1185165 > 1048576)", None, "CS-IMPORT-1MIB"),
        ("failed to solve: invalid configuration for remote cache, OCI mediatypes are required for image-manifest "
         "cache format", None, "CS-IMAGE-MANIFEST-OCI-FALSE"),
        ("unsupported media type application/vnd.buildkit.cacheconfig.v0", None, "CS-CACHE-IN-IMAGE-REPO"),
        ("405 Method Not Allowed: unsupported: Invalid parameter at 'ImageManifest' failed to satisfy constraint: "
         "'Invalid JSON syntax'", "ecr", "CS-ECR-405-MEDIATYPE"),
        (OPAQUE.format(status="400 Bad Request"), "ecr", "CS-ECR-INDEX"),
        ("unexpected status from PUT request to https://1.dkr.ecr.r.amazonaws.com/v2/a/manifests/c: 400 Bad Request",
         "ecr", "CS-ECR-INDEX"),
        (OPAQUE.format(status="404 Not Found"), "harbor", "CS-HARBOR-INDEX"),
        (OPAQUE.format(status="404 Not Found"), "gitea", "CS-GITEA-INDEX"),
        (OPAQUE.format(status="400 Bad Request"), "quay", "CS-QUAY-LIST"),
        (OPAQUE.format(status="400 Bad Request"), None, "CS-OPAQUE-400"),
        (OPAQUE.format(status="404 Not Found"), "ecr", "CS-OPAQUE-400"),  # not ECR's answer: no guess
        ("something else entirely went wrong", "ecr", "CS-ERROR-UNRECOGNISED"),
    ],
)  # fmt: skip
def test_error_texts_map_to_their_rules(text: str, target: Target | None, code: str) -> None:
    findings = diagnose_error_text(text, target)
    assert code in {f.code for f in findings}
    assert all(f.evidence.startswith("error text: ") for f in findings)
    assert all("\n" not in f.evidence for f in findings)


def test_ecr_media_type_error_is_not_claimed_for_other_registries() -> None:
    text = "Invalid parameter at 'ImageManifest' failed to satisfy constraint"
    assert "CS-ECR-405-MEDIATYPE" not in {f.code for f in diagnose_error_text(text, "ghcr")}


# --- JSON and the README ---------------------------------------------------------------------


def test_json_shape_is_stable() -> None:
    report = _report("max-index", "latest")
    findings = diagnose_report(report, "ecr")
    doc = findings_to_json(
        findings,
        target="ecr",
        target_detected_from="--target",
        buildkit_version=CURRENT_BUILDKIT,
        ref="oci:x",
        form=report.form,
    )
    assert list(doc) == [
        "schema",
        "ref",
        "cache_to",
        "cache_from",
        "error_text",
        "target",
        "target_detected_from",
        "buildkit_version",
        "form",
        "compatibility",
        "findings",
        "summary",
    ]
    assert doc["schema"] == JSON_SCHEMA == "cachescope.diagnose/v1"
    assert doc["compatibility"] == {
        "verdict": "rejects",
        "basis": "confirmed",
        "rule": "CS-ECR-INDEX",
        "note": None,
        "sources": doc["compatibility"]["sources"],
    }
    assert doc["summary"] == {"errors": 1, "warnings": 0, "infos": 1}
    first = doc["findings"][0]
    assert list(first) == ["code", "severity", "title", "message", "evidence", "fix", "sources", "basis"]
    assert first["code"] == "CS-ECR-INDEX"
    assert set(first["fix"]) == {"buildx", "command", "advice"}
    assert first["fix"]["advice"] == RULES["CS-ECR-INDEX"].fix
    assert all(f["fix"]["advice"] for f in doc["findings"])
    assert all(s.startswith(("https://", "docs/")) for s in first["sources"])
    assert (
        findings_to_json([], target=None, target_detected_from=None, buildkit_version=CURRENT_BUILDKIT)["compatibility"]
        is None
    )


def test_every_analysis_warning_code_has_a_rule() -> None:
    source = (Path(__file__).resolve().parents[2] / "core" / "analysis.py").read_text()
    codes = set(re.findall(r'"(CS-[A-Z0-9-]+)"', source))
    assert codes
    for code in codes:
        assert RULES[code].origin == "analysis", code


def test_every_rule_names_a_source_and_a_valid_code() -> None:
    for code, rule in RULES.items():
        assert code == rule.code
        assert code.startswith("CS-")
        assert code == code.upper()
        assert rule.sources, code
        assert all(s.startswith(("https://", "docs/")) for s in rule.sources), code
        assert "|" not in rule.trigger + rule.fix + rule.title, code  # would break the README table


def test_registries_md_codes_are_all_implemented() -> None:
    proposed = {
        "CS-ECR-INDEX", "CS-ECR-MLIST", "CS-ECR-BUILDKIT-OLD", "CS-ECR-405-MEDIATYPE", "CS-GCR-INDEX",
        "CS-QUAY-LIST", "CS-QUAY-CONFIG-TYPE", "CS-HARBOR-INDEX", "CS-DIST3-INDEX", "CS-GITEA-INDEX",
        "CS-NEXUS-OLD", "CS-ARTIFACTORY-OLD", "CS-INDEX-PORTABILITY", "CS-IMAGE-MANIFEST-OCI-FALSE",
        "CS-MANIFEST-SIZE", "CS-IMPORT-1MIB", "CS-ZSTD", "CS-ESTARGZ", "CS-CACHE-IN-IMAGE-REPO",
        "CS-ECR-MOUNT", "CS-OPAQUE-400",
    }  # fmt: skip
    assert proposed <= set(RULES)


def test_readme_part_tables_match_the_rules() -> None:
    text = README_PART.read_text()
    assert fill_generated_blocks(text) == text, (
        "README's diagnose tables are stale; regenerate them (see cachescope.core.registry_rules.fill_generated_blocks)"
    )
    assert render_rules_markdown() in text
    assert render_targets_markdown() in text
    for code in RULES:
        assert f"`{code}`" in text


def test_generated_blocks_are_replaced_not_appended() -> None:
    stale = (
        "intro\n<!-- generated by cachescope.core.registry_rules.render_targets_markdown(); do not edit -->\n"
        "| old |\n<!-- end generated -->\noutro\n"
    )
    filled = fill_generated_blocks(stale)
    assert "| old |" not in filled
    assert filled.startswith("intro\n")
    assert filled.endswith("<!-- end generated -->\noutro\n")
    assert render_targets_markdown() in filled


def test_finding_is_hashable_and_sorted_stably() -> None:
    a = Finding("CS-ZSTD", "info", "t", "m", "e", None, None, (), "unknown")
    assert len({a, dataclasses.replace(a)}) == 1
