"""The job kinds the service ships. Autodiscovered like any app's `jobs` module (tasks.kinds.autodiscover);
each kind module registers its kind where it is defined."""

from __future__ import annotations

from tasks.kinds import countdown, email_send, file_process

__all__ = ["countdown", "email_send", "file_process"]
