"""Hypothesis stateful tests and the concurrency stress test (docs/testing.md)."""
