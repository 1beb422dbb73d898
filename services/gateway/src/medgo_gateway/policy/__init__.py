"""Policies applied to a request before it reaches inference: who may call (auth),
how much (ratelimit, limits), how many at once (admission), and what may be asked
(safety)."""
