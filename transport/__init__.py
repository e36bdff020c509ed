"""The channel-layer transport: the one publisher, group names, and the watch on the layer's Redis servers.

A plain library below every app: it takes ready frames and control messages
and knows no app. It may import telemetry (counters) and third-party code only;
the gateway is its one user.
"""
