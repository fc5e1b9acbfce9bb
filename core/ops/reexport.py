"""Copy a cache to another store, tag or wrapper form, changing no config or layer bytes.

Forms: OCI index, OCI image manifest, Docker manifest list (buildkit-cache-format.md 3).
When the form and media types stay, the wrapper is copied byte for byte; a conversion
rebuilds only the wrapper (and, for Docker <-> OCI, the layer media types in it). An image
with inline cache becomes a real cache: a cache config is written from its records and the
image's layers are listed as the cache layers.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachescope.core.errors import PlanError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.loaded import LoadedCache
from cachescope.core.model.oci import Descriptor, Document
from cachescope.core.ops.plan import CREATING_ACTIONS, OpResult, Plan, Precondition, Step, precondition, tag_step
from cachescope.core.ops.progress import ProgressCallback, Tracker
from cachescope.core.ops.writer import (
    WrapperForm,
    build_wrapper,
    config_descriptor,
    ensure_layout,
    has_blob,
    layer_descriptors_in_order,
    mount_source,
    publish,
    resolve_target_form,
    sort_config,
    transfer_blobs,
    wrapper_form,
)
from cachescope.core.reader import load_cache
from cachescope.core.stores.base import Store


@dataclass(frozen=True, slots=True)
class _Target:
    document: Document
    config_raw: bytes | None
    """Only set when the config is new (inline source); otherwise it is copied as a blob."""
    blobs: tuple[Descriptor, ...]
    """Every blob the destination needs: layers, and the config unless it is new."""


def _target(cache: LoadedCache, form: WrapperForm) -> _Target:
    if cache.form == "inline":
        config = sort_config(cache.config)
        raw = config.encode()
        layers = layer_descriptors_in_order(config, cache.layer_descriptors)
        document = build_wrapper(form, layers, config_descriptor(raw))
        return _Target(document, raw, tuple({d.digest: d for d in layers}.values()))
    config_desc = cache.config_descriptor
    if config_desc is None:  # only inline cache has none
        raise PlanError(f"{cache.source} has no cache config descriptor")
    layers = list(cache.wrapper_children)
    if wrapper_form(cache.form, cache.mediatypes) == form:
        document = cache.document  # unchanged: copied byte for byte
    else:
        document = build_wrapper(form, layers, config_desc, base=cache.document)
    unique = {d.digest: d for d in layers}
    unique.setdefault(config_desc.digest, config_desc)
    return _Target(document, None, tuple(unique.values()))


async def plan_reexport(
    src: Store,
    reference: str,
    dst: Store,
    tag: str,
    *,
    form: str | None = None,
    mediatypes: mt.Family | None = None,
) -> Plan:
    """Plan copying the cache at `reference` to `dst:tag`, converting its wrapper if asked.

    `form` is `index` or `image-manifest` (None keeps the source's); `mediatypes` is `oci`
    or `docker`. BuildKit's rule applies: image-manifest needs OCI media types.
    """
    cache = await load_cache(src, reference)
    target_form, _family = resolve_target_form(cache.form, cache.mediatypes, form, mediatypes)
    target = _target(cache, target_form)
    mount_from = mount_source(src, dst)
    steps: list[Step] = []
    for desc in target.blobs:
        what = "cache config" if desc.media_type == mt.BUILDKIT_CACHE_CONFIG else (desc.media_type or "blob")
        if await has_blob(dst, desc):
            steps.append(Step("reuse-blob", str(desc.digest), desc.size, what))
        elif mount_from is not None:
            steps.append(Step("mount-blob", str(desc.digest), desc.size, f"{what} from {mount_from}"))
        else:
            steps.append(Step("copy-blob", str(desc.digest), desc.size, what, read=desc.size))
    raw = target.document.encode()
    if target.config_raw is not None:
        steps.append(Step("write-config", "cache config (from inline cache)", len(target.config_raw)))
    steps.append(
        Step(
            "write-manifest",
            f"{target_form} wrapper",
            len(raw),
            "unchanged bytes" if raw == cache.document.encode() else f"converted from {cache.form}",
        )
    )
    current = await precondition(dst, tag)
    new_digest = target.document.digest
    unchanged = current.digest == new_digest and not any(s.action in CREATING_ACTIONS for s in steps)
    if unchanged:
        steps = [s for s in steps if s.action == "reuse-blob"]
    else:
        steps.append(tag_step(current, new_digest))
    preconditions: tuple[Precondition, ...] = (await precondition(src, reference), current)
    notes: list[str] = []
    if target_form == "docker-manifest-list":
        notes.append("Docker manifest lists of layer blobs are rejected by many registries (ECR, Quay, Harbor)")
    if target_form != "image-manifest" and cache.form == "image-manifest":
        notes.append("the index forms are rejected by ECR and some other registries; image-manifest is the default")

    async def run(on_progress: ProgressCallback | None) -> OpResult:
        if unchanged:
            return OpResult("reexport", dst.display_name, tag, current_descriptor(target.document), {"unchanged": 1})
        tracker = Tracker("reexport", on_progress)
        await ensure_layout(dst)
        tracker.begin(
            "blobs", "copying blobs", bytes_total=sum(d.size for d in target.blobs), items_total=len(target.blobs)
        )
        outcomes = await transfer_blobs(src, dst, target.blobs, tracker)
        manifest = await publish(
            dst, tag, target.document, tracker, config_raw=target.config_raw, preconditions=preconditions
        )
        tracker.begin("done", "finished")
        counts: dict[str, int] = {}
        for outcome in outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        copied = sum(d.size for d in target.blobs if outcomes.get(d.digest) == "copied")
        return OpResult("reexport", dst.display_name, tag, manifest, counts, bytes_written=copied)

    summary = (
        target_form
        if target_form == wrapper_form(cache.form, cache.mediatypes) or cache.form == "inline"
        else f"{cache.form} -> {target_form}"
    )
    return Plan(
        "reexport",
        cache.source,
        f"{dst.display_name}:{tag}",
        tuple(steps),
        preconditions,
        tuple(notes),
        summary=f"{'inline cache -> ' if cache.form == 'inline' else ''}{summary}",
        runner=run,
    )


def current_descriptor(document: Document) -> Descriptor:
    raw = document.encode()
    return Descriptor(document.media_type, document.digest, len(raw))
