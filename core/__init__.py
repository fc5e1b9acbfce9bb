"""cachescope's engine: read, verify, explain and rewrite BuildKit cache images.

The public API is re-exported here (explicit, sorted `__all__`); the TUI and scripts use
only these names. Names load on first use (PEP 562), so importing one submodule, as
`cachescope --version` does, does not import the whole engine. Core modules import from
the defining module, never from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cachescope.core.analysis import (
        CacheReport,
        CompressionShare,
        DeepLayerCheck,
        LayerRow,
        ModeInference,
        RecordRow,
        RecordStats,
        Warning_,
        analyze,
    )
    from cachescope.core.diagnose import (
        BuildkitVersion,
        Finding,
        diagnose_error_text,
        diagnose_report,
        diagnose_spec,
    )
    from cachescope.core.errors import (
        AuthError,
        CachescopeError,
        CodecError,
        DigestMismatch,
        FormatError,
        IntegrityError,
        InvalidReference,
        LayoutError,
        NetworkError,
        NotACache,
        NotFound,
        PlanError,
        PlanStale,
        Refused,
        RegistryError,
        SizeMismatch,
        StoreError,
        TooLarge,
        UsageError,
    )
    from cachescope.core.model.digest import (
        Digest,
    )
    from cachescope.core.model.loaded import (
        LoadedCache,
    )
    from cachescope.core.model.reference import (
        BuildxCacheSpec,
        LayoutRef,
        Ref,
        RegistryHost,
        RegistryRef,
        parse_buildx_spec,
        parse_location,
        parse_reference,
    )
    from cachescope.core.ops.plan import (
        OpResult,
        Plan,
        Step,
    )
    from cachescope.core.ops.progress import (
        Progress,
        ProgressEvent,
        StepDone,
    )
    from cachescope.core.ops.prune import (
        parse_duration,
        parse_size,
        plan_prune,
        plan_prune_local,
        plan_prune_registry,
    )
    from cachescope.core.ops.recompress import (
        RecompressOptions,
        plan_recompress,
    )
    from cachescope.core.ops.reexport import (
        plan_reexport,
    )
    from cachescope.core.ops.trim import (
        TrimSelection,
        plan_trim,
        select_trim,
    )
    from cachescope.core.ops.verify import (
        VerifyFailure,
        VerifyReport,
        verify_cache,
    )
    from cachescope.core.ops.writer import (
        open_destination,
    )
    from cachescope.core.registry_rules import (
        TARGET_NAMES,
        detect_target,
    )
    from cachescope.core.session import (
        TagSummary,
        inspect,
        iter_repository_pages,
        list_repositories,
        list_tags,
        open_store,
        read_cache,
    )
    from cachescope.core.version import (
        __version__,
    )

_EXPORTS: dict[str, str] = {
    "AuthError": "cachescope.core.errors",
    "BuildkitVersion": "cachescope.core.diagnose",
    "BuildxCacheSpec": "cachescope.core.model.reference",
    "CacheReport": "cachescope.core.analysis",
    "CachescopeError": "cachescope.core.errors",
    "CodecError": "cachescope.core.errors",
    "CompressionShare": "cachescope.core.analysis",
    "DeepLayerCheck": "cachescope.core.analysis",
    "Digest": "cachescope.core.model.digest",
    "DigestMismatch": "cachescope.core.errors",
    "Finding": "cachescope.core.diagnose",
    "FormatError": "cachescope.core.errors",
    "IntegrityError": "cachescope.core.errors",
    "InvalidReference": "cachescope.core.errors",
    "LayerRow": "cachescope.core.analysis",
    "LayoutError": "cachescope.core.errors",
    "LayoutRef": "cachescope.core.model.reference",
    "LoadedCache": "cachescope.core.model.loaded",
    "ModeInference": "cachescope.core.analysis",
    "NetworkError": "cachescope.core.errors",
    "NotACache": "cachescope.core.errors",
    "NotFound": "cachescope.core.errors",
    "OpResult": "cachescope.core.ops.plan",
    "Plan": "cachescope.core.ops.plan",
    "PlanError": "cachescope.core.errors",
    "PlanStale": "cachescope.core.errors",
    "Progress": "cachescope.core.ops.progress",
    "ProgressEvent": "cachescope.core.ops.progress",
    "RecompressOptions": "cachescope.core.ops.recompress",
    "RecordRow": "cachescope.core.analysis",
    "RecordStats": "cachescope.core.analysis",
    "Ref": "cachescope.core.model.reference",
    "Refused": "cachescope.core.errors",
    "RegistryError": "cachescope.core.errors",
    "RegistryHost": "cachescope.core.model.reference",
    "RegistryRef": "cachescope.core.model.reference",
    "SizeMismatch": "cachescope.core.errors",
    "Step": "cachescope.core.ops.plan",
    "StepDone": "cachescope.core.ops.progress",
    "StoreError": "cachescope.core.errors",
    "TARGET_NAMES": "cachescope.core.registry_rules",
    "TagSummary": "cachescope.core.session",
    "TooLarge": "cachescope.core.errors",
    "TrimSelection": "cachescope.core.ops.trim",
    "UsageError": "cachescope.core.errors",
    "VerifyFailure": "cachescope.core.ops.verify",
    "VerifyReport": "cachescope.core.ops.verify",
    "Warning_": "cachescope.core.analysis",
    "__version__": "cachescope.core.version",
    "analyze": "cachescope.core.analysis",
    "detect_target": "cachescope.core.registry_rules",
    "diagnose_error_text": "cachescope.core.diagnose",
    "diagnose_report": "cachescope.core.diagnose",
    "diagnose_spec": "cachescope.core.diagnose",
    "inspect": "cachescope.core.session",
    "iter_repository_pages": "cachescope.core.session",
    "list_repositories": "cachescope.core.session",
    "list_tags": "cachescope.core.session",
    "open_destination": "cachescope.core.ops.writer",
    "open_store": "cachescope.core.session",
    "parse_buildx_spec": "cachescope.core.model.reference",
    "parse_duration": "cachescope.core.ops.prune",
    "parse_location": "cachescope.core.model.reference",
    "parse_reference": "cachescope.core.model.reference",
    "parse_size": "cachescope.core.ops.prune",
    "plan_prune": "cachescope.core.ops.prune",
    "plan_prune_local": "cachescope.core.ops.prune",
    "plan_prune_registry": "cachescope.core.ops.prune",
    "plan_recompress": "cachescope.core.ops.recompress",
    "plan_reexport": "cachescope.core.ops.reexport",
    "plan_trim": "cachescope.core.ops.trim",
    "read_cache": "cachescope.core.session",
    "select_trim": "cachescope.core.ops.trim",
    "verify_cache": "cachescope.core.ops.verify",
}

__all__ = [
    "TARGET_NAMES",
    "AuthError",
    "BuildkitVersion",
    "BuildxCacheSpec",
    "CacheReport",
    "CachescopeError",
    "CodecError",
    "CompressionShare",
    "DeepLayerCheck",
    "Digest",
    "DigestMismatch",
    "Finding",
    "FormatError",
    "IntegrityError",
    "InvalidReference",
    "LayerRow",
    "LayoutError",
    "LayoutRef",
    "LoadedCache",
    "ModeInference",
    "NetworkError",
    "NotACache",
    "NotFound",
    "OpResult",
    "Plan",
    "PlanError",
    "PlanStale",
    "Progress",
    "ProgressEvent",
    "RecompressOptions",
    "RecordRow",
    "RecordStats",
    "Ref",
    "Refused",
    "RegistryError",
    "RegistryHost",
    "RegistryRef",
    "SizeMismatch",
    "Step",
    "StepDone",
    "StoreError",
    "TagSummary",
    "TooLarge",
    "TrimSelection",
    "UsageError",
    "VerifyFailure",
    "VerifyReport",
    "Warning_",
    "__version__",
    "analyze",
    "detect_target",
    "diagnose_error_text",
    "diagnose_report",
    "diagnose_spec",
    "inspect",
    "iter_repository_pages",
    "list_repositories",
    "list_tags",
    "open_destination",
    "open_store",
    "parse_buildx_spec",
    "parse_duration",
    "parse_location",
    "parse_reference",
    "parse_size",
    "plan_prune",
    "plan_prune_local",
    "plan_prune_registry",
    "plan_recompress",
    "plan_reexport",
    "plan_trim",
    "read_cache",
    "select_trim",
    "verify_cache",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
