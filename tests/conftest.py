"""Test setup. Tests run in one mode per pytest process (see scripts/test):

- embedded (default): SQLite in a file + an in-process Celery worker on the memory transport;
- production (BATON_TEST_MODE=production): PostgreSQL + Redis + `celery worker` processes.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.modes",
    "tests.fixtures.executions",
    "tests.fixtures.api",
    "tests.fixtures.oauth",
]


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing folder
    # Tests create many users: a fast hash for their passwords (production keeps Django's default).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_revision_cache() -> None:
    """Rolled-back tests can reuse a FlowRevision id with another source (SQLite): start clean."""
    from flows.services.flows import forget_cached_revisions
    from flows.services.killswitches import forget_cached_switches

    forget_cached_revisions()
    forget_cached_switches()
