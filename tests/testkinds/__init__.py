"""A Django app of job kinds that exist only for tests; the test settings install it (JOBS_TEST_KINDS)."""
