"""`cachescope diagnose`: will this cache, or this planned --cache-to, work with that registry?

A CI step: exit 0 without errors (warnings too with --strict), 1 with findings that fail.
All rules live in `cachescope.core.diagnose`; this module only reads and prints.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Literal

from cachescope.core import (
    LayoutRef,
    RegistryRef,
    StoreError,
    TooLarge,
    UsageError,
    inspect,
    list_tags,
    parse_buildx_spec,
    parse_reference,
)
from cachescope.core.diagnose import (
    CURRENT_BUILDKIT,
    JSON_SCHEMA,
    TARGET_OPTIONS,
    BuildkitVersion,
    Finding,
    compatibility,
    diagnose_error_text,
    diagnose_report,
    diagnose_spec,
    exit_code,
    findings_to_json,
    manifest_too_large,
    planned_form,
    resolve_target,
    sort_findings,
    summarize,
)
from cachescope.core.model.loaded import Form
from cachescope.core.model.reference import parse_registry_ref
from cachescope.core.registry_rules import TARGET_NAMES, Target
from cachescope.tui import textout


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diagnose",
        help="check a cache, or a planned --cache-to/--cache-from string, against a registry and BuildKit version",
        description="Report what stands between a BuildKit cache and a registry: rejected forms, media types, "
        "size limits, missing blobs. Exit 0 = no errors, 1 = errors (or warnings with --strict), "
        "2 = bad usage or input, 3 = network/registry failure.",
    )
    p.add_argument("ref", nargs="?", help="cache to diagnose: registry reference, oci:PATH[:TAG] or layout dir")
    p.add_argument(
        "--cache-to", metavar="SPEC", help="check a planned buildx --cache-to string instead (no cache needed)"
    )
    p.add_argument("--cache-from", metavar="SPEC", help="check a planned buildx --cache-from string instead")
    p.add_argument(
        "--target",
        choices=TARGET_OPTIONS,
        default="auto",
        help="registry to check against; auto (default) detects it from the host name. "
        "distribution = registry:2 (v2.x), distribution3 = registry:3 (v3.x)",
    )
    p.add_argument(
        "--buildkit-version",
        default=str(CURRENT_BUILDKIT),
        metavar="VERSION",
        help=f"BuildKit that writes/imports the cache (default {CURRENT_BUILDKIT})",
    )
    p.add_argument(
        "--error",
        metavar="TEXT",
        help="the error a build or pull printed (BuildKit's or the registry's); matched against known rejections",
    )
    p.add_argument(
        "--image",
        metavar="REF",
        help="where the build pushes its image (registry/repo[:tag]); ECR's cross-repository mount note "
        "(CS-ECR-MOUNT) is left out when the image goes to the cache's own repository",
    )
    p.add_argument("--json", action="store_true", help=f"print one JSON object ({JSON_SCHEMA})")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.add_argument(
        "--scan-repo",
        action="store_true",
        help="also list the cache's repository (one manifest request per tag) to find image tags next to the cache",
    )
    p.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    version = BuildkitVersion.parse(args.buildkit_version)
    given = [x for x in (args.ref, args.cache_to, args.cache_from) if x]
    if len(given) > 1 or (not given and not args.error):
        raise UsageError("give one of REF, --cache-to SPEC or --cache-from SPEC (and/or --error TEXT)")
    plain_http = bool(getattr(args, "plain_http", False))
    if args.image:
        parse_registry_ref(args.image)  # a bad image reference is a usage error, not a silent no-op
    target: Target | None
    form: Form | None = None
    keys: dict[str, str] = {}
    findings: list[Finding] = []
    if args.ref:
        ref, _ = parse_reference(args.ref, plain_http=plain_http)
        target, detected_from = resolve_target(args.target, ref)
        try:
            report = await inspect(ref)
        except TooLarge as exc:
            if "manifest" not in str(exc).split(" too large", 1)[0]:
                raise
            findings = manifest_too_large(str(exc), args.ref)
        else:
            form = report.form
            non_cache = await _non_cache_tags(ref) if args.scan_repo else None
            findings = diagnose_report(
                report,
                target,
                source_ref=args.ref,
                buildkit_version=version,
                non_cache_tags=non_cache,
                image=args.image,
            )
        subject = args.ref
        keys["ref"] = args.ref
    elif args.cache_to or args.cache_from:
        direction: Literal["to", "from"] = "to" if args.cache_to else "from"
        text = args.cache_to or args.cache_from
        spec = parse_buildx_spec(text, direction)
        registry = parse_registry_ref(spec.attrs["ref"]) if spec.type == "registry" and spec.attrs.get("ref") else None
        target, detected_from = resolve_target(args.target, registry)
        findings = diagnose_spec(spec, target, version, image=args.image)
        form = planned_form(spec, version)
        subject = f"--cache-{direction} {text}"
        keys[f"cache_{direction}"] = text
    else:
        target, detected_from = resolve_target(args.target, None)
        subject = "--error text"
    if args.error:
        findings = sort_findings([*findings, *diagnose_error_text(args.error, target)])
        keys["error_text"] = args.error
    if args.json:
        textout.print_json(
            findings_to_json(
                findings,
                target=target,
                target_detected_from=detected_from,
                buildkit_version=version,
                ref=keys.get("ref"),
                cache_to=keys.get("cache_to"),
                cache_from=keys.get("cache_from"),
                error_text=keys.get("error_text"),
                form=form,
            )
        )
    else:
        print(render(findings, subject=subject, target=target, detected_from=detected_from, version=version, form=form))
    return exit_code(findings, strict=args.strict)


async def _non_cache_tags(ref: RegistryRef | LayoutRef) -> list[str] | None:
    """Tags next to the cache that are not caches (images, artifacts); None if listing failed."""
    try:
        tags = await list_tags(ref)
    except StoreError as exc:
        textout.warn(f"--scan-repo: cannot list tags: {exc}")
        return None
    return sorted(t.name for t in tags if t.error is None and t.form is None)


def render(
    findings: list[Finding],
    *,
    subject: str,
    target: Target | None,
    detected_from: str | None,
    version: BuildkitVersion,
    form: Form | None = None,
) -> str:
    """Plain text: a header, one block per finding, a summary line."""
    if target is None:
        where = "target: none detected (pass --target)"
    else:
        how = "--target" if detected_from == "--target" else f"detected from {detected_from}"
        where = f"target: {target} = {TARGET_NAMES[target]} ({how})"
    lines = [f"diagnose {subject}", f"  {where}; BuildKit {version}"]
    status = compatibility(target, form)
    if form is not None:
        verdict = f"; {TARGET_NAMES[target]} {status.verdict}" if status and target else ""
        basis = f" ({status.basis})" if status and status.basis != "unknown" else ""
        lines.append(f"  form: {form}{verdict}{basis}")
    lines.append("")
    pad = " " * 9
    for f in findings:
        # The stream is passed explicitly: the default is bound when textout is imported.
        lines.append(f"{textout.severity_label(f.severity, sys.stdout)}  {f.code}  {f.title}")
        lines.append(f"{pad}{f.message}")
        lines.append(f"{pad}evidence: {f.evidence}")
        if f.fix_buildx:
            lines.append(f"{pad}fix: {f.fix_buildx}")
        if f.fix_command:
            lines.append(f"{pad}repair: {f.fix_command}")
        if not (f.fix_buildx or f.fix_command) and f.advice:
            lines.append(f"{pad}advice: {f.advice}")
        if f.sources:
            lines.append(f"{pad}source: {', '.join(f.sources)}")
    if not findings:
        lines.append("no findings")
    counts = summarize(findings)
    lines.append("")
    lines.append(f"{counts['errors']} error(s), {counts['warnings']} warning(s), {counts['infos']} info(s)")
    return "\n".join(lines)
