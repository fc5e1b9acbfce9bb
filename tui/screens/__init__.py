"""Full screens: open, registry and directory browsers, cache view, operations."""
