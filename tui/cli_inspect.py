"""`cachescope inspect` and `cachescope ls`: the read side on the command line."""

from __future__ import annotations

import argparse
from typing import Any

from cachescope.core import (
    CacheReport,
    LayoutRef,
    RegistryHost,
    inspect,
    list_repositories,
    list_tags,
    parse_location,
    parse_reference,
)
from cachescope.core.errors import EXIT_FAILED, EXIT_OK
from cachescope.tui import textout

INSPECT_SCHEMA = "cachescope.inspect/v1"
LS_SCHEMA = "cachescope.ls/v1"


def register(sub: Any) -> None:
    p = sub.add_parser("inspect", help="show what a cache holds and what is wrong with it")
    p.add_argument("ref", help="registry reference, oci:PATH[:TAG], layout dir or buildx cache string")
    p.add_argument("--json", action="store_true", help=f"print one JSON object ({INSPECT_SCHEMA})")
    p.add_argument("--deep", action="store_true", help="decompress every layer and check its uncompressed digest")
    p.set_defaults(func=run_inspect)

    p = sub.add_parser("ls", help="list repositories of a registry, or tags of a repository or layout dir")
    p.add_argument("location", help="HOST[:PORT], HOST/REPO, or a layout directory")
    p.add_argument("--json", action="store_true", help=f"print one JSON object ({LS_SCHEMA})")
    p.set_defaults(func=run_ls)


async def run_inspect(args: argparse.Namespace) -> int:
    ref, spec = parse_reference(args.ref, plain_http=args.plain_http)
    if spec is not None and spec.unknown:
        textout.warn(f"ignoring unknown {spec.type} cache option(s): {', '.join(spec.unknown)}")
    report = await inspect(ref, deep=args.deep)
    if args.json:
        textout.print_json(report_to_json(report))
    else:
        print(render_report(report))
    return EXIT_FAILED if report.has_errors else EXIT_OK


def report_to_json(report: CacheReport) -> dict[str, Any]:
    """The stable `cachescope.inspect/v1` shape (README documents it); extra keys may be added."""
    return {
        "schema": INSPECT_SCHEMA,
        "ref": report.source,
        "store": report.store_kind,
        "manifest_digest": str(report.manifest_digest),
        "form": report.form,
        "mediatypes": report.mediatypes,
        "config": {
            "digest": str(report.config_digest) if report.config_digest else None,
            "size": report.config_size,
        },
        "layers": [
            {
                "digest": str(row.digest),
                "size": row.size,
                "media_type": row.media_type,
                "compression": row.compression,
                "uncompressed_digest": str(row.uncompressed_digest) if row.uncompressed_digest else None,
                "created_at": row.created_at_raw,
                "parent": row.parent,
                "present": row.present,
                **(
                    {
                        "deep": {
                            "compression": row.deep.detected_compression,
                            "uncompressed_digest": str(row.deep.uncompressed_digest)
                            if row.deep.uncompressed_digest
                            else None,
                            "uncompressed_size": row.deep.uncompressed_size,
                            "error": row.deep.error,
                        }
                    }
                    if row.deep
                    else {}
                ),
            }
            for row in report.layers
        ],
        "records": {
            "count": report.record_stats.count,
            "roots": report.record_stats.roots,
            "leaves": report.record_stats.leaves,
            "depth": report.record_stats.depth,
            "with_results": report.record_stats.with_results,
        },
        "mode": {"value": report.mode.value, "reason": report.mode.reason},
        "size": {"compressed": report.compressed_size, "uncompressed": report.uncompressed_size},
        "warnings": [
            {"code": w.code, "severity": w.severity, "message": w.message, "subject": w.subject}
            for w in report.warnings
        ],
        "manifest": {"media_type": report.manifest_media_type, "size": report.manifest_size},
        "image_config_digest": str(report.image_config_digest) if report.image_config_digest else None,
        "platform": report.platform,
        "compression_mix": [
            {"compression": s.compression, "layers": s.layers, "bytes": s.bytes} for s in report.compression_mix
        ],
        "unique_blobs": report.unique_blobs,
        "deep": report.deep,
    }


_FORM_TEXT = {
    "index": "OCI image index (layers listed as index children)",
    "image-manifest": "OCI image manifest (cache config as the manifest's config)",
    "docker-manifest-list": "Docker manifest list (layers listed as list children)",
    "inline": "inline cache in an image config",
}


def render_report(report: CacheReport) -> str:
    stats = report.record_stats
    mix = ", ".join(f"{s.layers} {s.compression} ({textout.size(s.bytes)})" for s in report.compression_mix) or "-"
    uncompressed = textout.size(report.uncompressed_size) if report.uncompressed_size is not None else "unknown"
    lines = [
        f"cache       {report.source}",
        f"form        {report.form}: {_FORM_TEXT[report.form]}, {report.mediatypes.upper()} media types",
        f"manifest    {report.manifest_digest} ({textout.size(report.manifest_size)})",
    ]
    if report.config_digest:
        lines.append(f"config      {report.config_digest} ({textout.size(report.config_size)})")
    if report.image_config_digest:
        lines.append(f"image cfg   {report.image_config_digest}" + (f" ({report.platform})" if report.platform else ""))
    lines += [
        f"mode        {report.mode.value} (inferred: {report.mode.reason})",
        f"records     {stats.count} ({stats.roots} roots, {stats.leaves} {'leaf' if stats.leaves == 1 else 'leaves'}, "
        f"depth {stats.depth}, "
        f"{stats.with_results} with results)",
        f"size        {textout.size(report.compressed_size)} compressed in {report.unique_blobs} blobs, "
        f"{uncompressed} uncompressed" + ("" if report.deep or report.uncompressed_size is not None else " (--deep)"),
        f"compression {mix}",
        "",
    ]
    rows = []
    for row in report.layers:
        state = "" if row.present in (True, None) else "  MISSING"
        check = ""
        if row.deep is not None:
            ok = row.deep.error is None and (
                row.uncompressed_digest is None or row.deep.uncompressed_digest == row.uncompressed_digest
            )
            check = "ok" if ok else "BAD"
        rows.append(
            [
                str(row.index),
                str(row.parent),
                row.digest.short,
                textout.size(row.size),
                row.compression or "?",
                textout.age(row.created_at),
                row.uncompressed_digest.short if row.uncompressed_digest else "-",
                check + state,
            ]
        )
    headers = ["#", "PARENT", "BLOB", "SIZE", "COMPRESSION", "CREATED", "UNCOMPRESSED", "DEEP" if report.deep else ""]
    lines.append(textout.table(headers, rows, right=(0, 1, 3)))
    lines.append("")
    if report.warnings:
        for w in report.warnings:
            lines.append(f"{textout.severity_label(w.severity)} {w.code}: {w.message}")
    else:
        lines.append("no warnings")
    return "\n".join(lines)


async def run_ls(args: argparse.Namespace) -> int:
    location = parse_location(args.location, plain_http=args.plain_http)
    if isinstance(location, RegistryHost):
        repos = await list_repositories(location)
        if args.json:
            textout.print_json({"schema": LS_SCHEMA, "location": str(location), "repositories": repos})
        else:
            print("\n".join(repos) if repos else f"{location}: no repositories")
        return EXIT_OK
    tags = await list_tags(location, details=True)
    kind = "local" if isinstance(location, LayoutRef) else "registry"
    where = str(location.path) if isinstance(location, LayoutRef) else f"{location.host}/{location.repository}"
    if args.json:
        textout.print_json(
            {
                "schema": LS_SCHEMA,
                "location": where,
                "store": kind,
                "tags": [
                    {
                        "name": t.name,
                        "digest": str(t.digest) if t.digest else None,
                        "media_type": t.media_type,
                        "form": t.form,
                        "size": t.size,
                        "error": t.error,
                    }
                    for t in tags
                ],
            }
        )
        return EXIT_OK
    if not tags:
        print(f"{where}: no tags")
        return EXIT_OK
    rows = [
        [
            t.name,
            t.digest.short if t.digest else "-",
            t.form or ("not a cache" if t.digest else "-"),
            textout.size(t.size) if t.size else "-",
            t.error or "",
        ]
        for t in tags
    ]
    print(textout.table(["TAG", "DIGEST", "FORM", "SIZE", ""], rows, right=(3,)))
    return EXIT_OK
