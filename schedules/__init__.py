"""Schedules: jobs at a time (`run_at`) or on a calendar (five-field cron in an IANA timezone).

A domain app above tasks: a due schedule submits an ordinary job through
tasks.services, as its owner. The scheduler runs inside Celery beat
(schedules.beat), so a due time fires on time however busy the workers are.
"""
