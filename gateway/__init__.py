"""The WebSocket gateway, /ws/jobs/: the protocol's consumer, parsing, frames, abuse limits and credential re-checks.

The endpoint layer, above every domain app: it may import the domain apps
(accounts, uploads, tasks, notifications) and the plain libraries (transport,
telemetry, patches, envconfig); only the composition root (core) imports it.
It subscribes to the apps' domain events and tells the sockets they concern.
"""
