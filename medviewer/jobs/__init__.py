"""Background work primitives: progress, cancellation, a runner (stdlib only)."""
