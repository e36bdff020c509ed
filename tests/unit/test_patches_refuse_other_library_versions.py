"""Every patch of a third-party internal runs only on the version it was written for: any other stops start-up."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from django.core.exceptions import ImproperlyConfigured

import patches


def test_the_installed_versions_are_the_ones_patched() -> None:
    patches.check_versions()  # raises otherwise


@pytest.mark.parametrize("name", sorted(patches.WRITTEN_FOR))
def test_another_version_of_a_patched_library_is_refused_by_name(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(patches.WRITTEN_FOR, name, "0.0.1")
    with pytest.raises(ImproperlyConfigured) as refused:
        patches.check_versions()
    assert f"{name} {version(name)} (patched for 0.0.1)" in str(refused.value)


def test_a_release_series_admits_its_patch_releases_only() -> None:
    assert patches._matches("5.2.19", "5.2")
    assert patches._matches("4.2.3", "4.2.3")
    assert not patches._matches("5.20.1", "5.2")
    assert not patches._matches("4.2.4", "4.2.3")
