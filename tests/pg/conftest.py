"""PostgreSQL fixtures: every test gets a database of its own, made here and dropped after.

The server is the one on 127.0.0.1:5432 (user postgres, trust authentication), or the one
``PUMPKIT_PG_DSN`` names (a libpq URL of any database on it; ``postgres`` is used to create
and drop). Without a server the tests skip with the reason; with ``PUMPKIT_REQUIRE_PG=1``
(as ``.ci/run`` sets) that skip is a failure instead, so CI always runs them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from pumpkit.testing.pg_rich import (
    RichRoles,
    create_rich_roles,
    drop_rich_roles,
    fill_rich,
    rich_schema,
)

ADMIN_DSN = os.environ.get("PUMPKIT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _url_of(database: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"no PostgreSQL server at {ADMIN_DSN}: {exc}"
        if os.environ.get("PUMPKIT_REQUIRE_PG") == "1":
            pytest.fail(f"PUMPKIT_REQUIRE_PG=1 but {reason}", pytrace=False)
        pytest.skip(reason)


async def create_database(prefix: str = "pumpkit_test") -> str:
    """A new empty database; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return _url_of(name)


async def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    admin = await _admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new empty database for the length of the block; its URL."""
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@pytest_asyncio.fixture
async def pg_url() -> AsyncIterator[str]:
    """The URL of a fresh database on the test server, dropped after the test."""
    async with fresh_database() as url:
        yield url


@pytest_asyncio.fixture
async def pg_url2() -> AsyncIterator[str]:
    """A second fresh database (the target of a round trip)."""
    async with fresh_database() as url:
        yield url


@pytest_asyncio.fixture
async def pg(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to ``pg_url``."""
    conn = await asyncpg.connect(pg_url)
    try:
        yield conn
    finally:
        await conn.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/pg/" in str(item.fspath):
            item.add_marker(pytest.mark.postgres)


class Rich:
    """A database holding the rich fixture (``pumpkit.testing.pg_rich``) and its roles."""

    def __init__(self, url: str, roles: RichRoles) -> None:
        self.url = url
        self.roles = roles


@pytest_asyncio.fixture
async def rich(pg_url: str) -> AsyncIterator[Rich]:
    """``pg_url`` holding the rich fixture, schema and rows; its roles dropped after."""
    roles = await create_rich_roles(ADMIN_DSN)
    try:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(rich_schema(roles))
            await conn.execute(fill_rich())
        finally:
            await conn.close()
        yield Rich(pg_url, roles)
    finally:
        await drop_rich_roles(ADMIN_DSN, roles)
