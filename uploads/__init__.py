"""Uploads: files users send over HTTP (POST /api/uploads/), and the operations jobs run over them.

A domain app on the lowest domain layer: it may import the plain libraries
(patches, envconfig) only; file.process (tasks) builds on it.
"""
