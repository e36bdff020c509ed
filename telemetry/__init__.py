"""Telemetry: Prometheus metrics of every process, and one-JSON-object-per-line logs.

A plain library below every app: it imports third-party code and patches (the
metrics' multiprocess files) only, and reads no model (what it counts arrives
as plain values or protocols).
"""
