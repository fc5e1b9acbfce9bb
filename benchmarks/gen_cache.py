"""Write a synthetic but well-formed BuildKit cache (OCI layout, image-manifest form) of any size.

The shape follows what BuildKit exports with mode=max: several stages, each a chain of
steps linked to the previous one; every third step produces a layer on top of its
stage's chain. Layer blobs are tiny real gzip streams whose `containerd.io/uncompressed`
annotation is the true diffID, so verification and `--deep` work on the result.

    python -m benchmarks.gen_cache DIR [--records 10000] [--layers 2000]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write_blob(blobs: Path, data: bytes) -> str:
    digest = _digest(data)
    (blobs / digest.removeprefix("sha256:")).write_bytes(data)
    return digest


def _created(i: int) -> str:
    return f"2026-11-23T06:{(i // 60) % 60:02d}:{i % 60:02d}.{i:09d}Z"


def generate_cache(
    root: Path, records: int = 10_000, *, layers: int | None = None, stage_length: int = 100, tag: str = "latest"
) -> Path:
    """Write a layout with `records` cache records (and about `layers` layers) into `root`; return it.

    Without `layers`, every third step of a stage adds a layer (about a third of the records).
    """
    every = 3 if layers is None else max(1, round(records / max(1, layers)))
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layers: list[dict[str, object]] = []
    descriptors: list[dict[str, object]] = []
    recs: list[dict[str, object]] = []
    base_layer = -1
    for i in range(records):
        step = i % stage_length
        rec: dict[str, object] = {"digest": _digest(f"record-{i}".encode())}
        if step == 0:
            base_layer = -1  # a root record (image or context source): no inputs, no results
        else:
            rec["inputs"] = [[{"link": i - 1}]]
            if step % 3 == 1:
                rec["inputs"] = [[{"link": i - 1}], [{"selector": _digest(f"sel-{i}".encode()), "link": i - step}]]
            if step % every == 0 or step == stage_length - 1:
                payload = f"layer for record {i}\n".encode() * 4
                raw = gzip.compress(payload, mtime=0)
                digest = _write_blob(blobs, raw)
                layers.append({"blob": digest, "parent": base_layer})
                base_layer = len(layers) - 1
                rec["layers"] = [{"layer": base_layer, "createdAt": _created(i)}]
                descriptors.append(
                    {
                        "mediaType": LAYER_GZIP,
                        "digest": digest,
                        "size": len(raw),
                        "annotations": {
                            "buildkit/createdat": _created(i),
                            "containerd.io/uncompressed": _digest(payload),
                        },
                    }
                )
        recs.append(rec)
    config = json.dumps({"layers": layers, "records": recs}, separators=(",", ":")).encode()
    config_digest = _write_blob(blobs, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CACHE_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": descriptors,
        },
        separators=(",", ":"),
    ).encode()
    manifest_digest = _write_blob(blobs, manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=None)
    args = parser.parse_args()
    generate_cache(args.dir, args.records, layers=args.layers)
    print(args.dir)


if __name__ == "__main__":
    main()
