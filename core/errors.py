"""Every failure cachescope reports, as one tree with one-line messages.

    CachescopeError                 exit 2 unless a subclass says otherwise
    ├── InvalidReference            the user typed a reference we cannot use (2)
    ├── UsageError                  options that do not fit together (2)
    ├── FormatError                 a document is not what it claims to be (2)
    │   ├── TooLarge                a document over the size we agree to read (2)
    │   └── NotACache               an image or artifact without BuildKit cache (2)
    ├── IntegrityError              bytes do not match their descriptor (1)
    │   ├── DigestMismatch
    │   └── SizeMismatch
    ├── StoreError                  the store failed us (3)
    │   ├── NotFound                manifest, blob or tag absent (3)
    │   ├── AuthError               credentials missing or refused (3)
    │   ├── RegistryError           HTTP status / OCI error codes (3)
    │   ├── NetworkError            connection, timeout, retries exhausted (3)
    │   └── LayoutError             a local OCI layout is unusable (2)
    ├── CodecError                  a layer does not decompress (1)
    └── PlanError                   an operation cannot be planned or applied (1)
        ├── PlanStale               the source changed since the plan was made
        └── Refused                 a destructive step needs confirmation

`str(err)` is always one line naming the subject; `hint` optionally says what to do.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NETWORK = 3


class CachescopeError(Exception):
    """Base of every error cachescope raises on purpose."""

    exit_code: ClassVar[int] = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # One line, always: multi-line text from servers is folded.
        super().__init__(" ".join(message.split()))
        self.hint = hint

    @property
    def message(self) -> str:
        return str(self)


class InvalidReference(CachescopeError):
    """A reference string that names no store we can open."""


class UsageError(CachescopeError):
    """Options that contradict each other or the target."""


class FormatError(CachescopeError):
    """Malformed JSON, wrong media type or a document of the wrong shape."""


class TooLarge(FormatError):
    """A manifest or config larger than we agree to read into memory."""


class NotACache(FormatError):
    """Content that is a valid image or artifact but carries no BuildKit cache."""


class IntegrityError(CachescopeError):
    """Bytes that do not match the descriptor that promised them."""

    exit_code: ClassVar[int] = EXIT_FAILED


class DigestMismatch(IntegrityError):
    """Content hashed to a different digest than expected."""

    def __init__(self, expected: str, actual: str, *, subject: str = "content") -> None:
        super().__init__(f"digest mismatch for {subject} {expected}: got {actual}")
        self.expected = expected
        self.actual = actual


class SizeMismatch(IntegrityError):
    """Content longer or shorter than its descriptor's size."""

    def __init__(self, digest: str, expected: int, actual: int) -> None:
        super().__init__(f"size mismatch for {digest}: expected {expected} bytes, got {actual}")
        self.digest = digest
        self.expected = expected
        self.actual = actual


class StoreError(CachescopeError):
    """The registry or layout could not give us what we asked for."""

    exit_code: ClassVar[int] = EXIT_NETWORK


class NotFound(StoreError):
    """A manifest, blob, tag or repository does not exist."""


class AuthError(StoreError):
    """Credentials were missing, refused or not allowed the scope."""


class RegistryError(StoreError):
    """An HTTP error from a registry, with its OCI error codes when it sent any."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.codes = codes


class NetworkError(StoreError):
    """Connection refused, DNS failure, timeout, or retries exhausted."""


class LayoutError(StoreError):
    """A local OCI layout that is missing, malformed or unsafe."""

    exit_code: ClassVar[int] = EXIT_USAGE


class CodecError(CachescopeError):
    """A layer blob that does not decompress as its media type says."""

    exit_code: ClassVar[int] = EXIT_FAILED


class PlanError(CachescopeError):
    """An operation that cannot be planned or applied."""

    exit_code: ClassVar[int] = EXIT_FAILED


class PlanStale(PlanError):
    """The source changed between planning and applying."""


class Refused(PlanError):
    """A destructive step that was not confirmed."""

    exit_code: ClassVar[int] = EXIT_USAGE
