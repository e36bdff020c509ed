"""Accounts: personal API tokens, and how a socket or an /api/ request is authenticated (session or token).

A domain app on the lowest domain layer: it may import the plain libraries
(patches, envconfig) only. When a credential ends it sends accounts.events,
to which the gateway subscribes.
"""
