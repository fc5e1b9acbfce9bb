"""Pure data: digests, media types, references, OCI documents and BuildKit cache configs."""
