"""Where caches live: a registry over the distribution API, or an OCI layout directory."""
