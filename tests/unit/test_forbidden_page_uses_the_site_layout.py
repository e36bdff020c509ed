"""A page a user may not open answers 403 with the site's own page: its icon and header.

A bare 403 body has no `<link rel="icon">`, so the browser asks for /favicon.ico,
which is a 404 in the console of every refused page.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_operations_view_refuses_a_user_who_is_not_staff_with_the_site_page(user: User) -> None:
    client = Client()
    client.force_login(user)
    response = client.get("/ops/")
    assert response.status_code == 403
    assert "403.html" in [template.name for template in response.templates]
    page = response.content.decode()
    assert 'rel="icon"' in page
    assert "The operations view is for staff." in page


def test_staff_open_the_operations_view(user: User) -> None:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    assert client.get("/ops/").status_code == 200
