"""DNS serving: wire fast path, cache, upstream forwarding, listeners."""
