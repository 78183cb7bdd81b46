"""Trace stores: where call traces are kept between tracing and stub generation."""
