"""Fixtures shared by every test folder."""

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from soak.core.owner import SESSION_ENV
from soak.history.location import parse

# Everything this test session starts (in-process or through `soak run` children) is
# tagged with it, so the session's checks and cleanup touch only what is its own.
TEST_SESSION = f"pytest-{uuid.uuid4().hex[:12]}"
os.environ[SESSION_ENV] = TEST_SESSION
os.environ.pop("SOAK_HISTORY", None)  # the tests name their histories (a scheduler's is not theirs)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order for scripts/test's workers (`--dist loadgroup`, which hands out one unit
    at a time, in this order): the real soak runs (`slow`) first, one unit each unless
    they share a run (`xdist_group`), so the longest start early; then every other test
    with its module, whose servers and models then start once per worker, not per test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    for item in items:
        if not item.get_closest_marker("slow") and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(scope="session")
def test_session() -> str:
    """The SOAK_SESSION of this test session (label soak.session, SOAK_OWNER marker)."""
    return TEST_SESSION


# summary.json keys that docs/contract.md#summaryjson lists: users and scripts read these.
CONTRACT_SUMMARY_KEYS = {
    "": {"schema", "status", "backend", "model", "variants"},
    "variant": {
        "name",
        "allocator",
        "allocator_verified",
        "status",
        "swaps_completed",
        "memory",
        "latency",
        "swaps",
    },
    "memory": {
        "metric",
        "baseline_mb",
        "peak_mb",
        "final_mb",
        "retained_mb",
        "retained_mb_per_swap",
        "verdict",
    },
    "latency": {
        "steady_p50_ms",
        "steady_p99_ms",
        "swap_p99_ms",
        "max_ms",
        "errors",
        "first_after_swap_ms",
    },
    "swap": {"index", "version", "load_s", "settle_s", "settled_mb", "peak_mb", "retained_mb"},
}


def _assert_contract_summary(summary: dict) -> None:
    keys = CONTRACT_SUMMARY_KEYS
    assert set(summary) >= keys[""] and summary["schema"] == "soak.summary/1"
    for variant in summary["variants"]:
        assert set(variant) >= keys["variant"], variant["name"]
        assert set(variant["memory"]) >= keys["memory"], variant["name"]
        assert set(variant["latency"]) >= keys["latency"], variant["name"]
        assert all(set(swap) >= keys["swap"] for swap in variant["swaps"]), variant["name"]


@pytest.fixture
def assert_contract_summary():
    """Check that a summary dict has every key docs/contract.md#summaryjson lists."""
    return _assert_contract_summary


# --- a real PostgreSQL server, for the shared history ------------------------------------------

# pytester drops the modules first imported during its tests: psycopg imported there, then
# again, would raise errors of a class SQLAlchemy's dialect (holding the first) does not
# wrap. Imported once, before any test, they stay.
with contextlib.suppress(ImportError):
    import psycopg  # noqa: F401
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

PG_USER = "soak-pg"  # the system user the server runs as when the tests run as root
PG_ROLE = "soak"  # the server's superuser, with a password (scram-sha-256 over TCP)


@dataclass(frozen=True)
class PostgresServer:
    """A server of this test session: Debian's PostgreSQL on 127.0.0.1, its own data dir."""

    port: int
    password: str
    socket_dir: Path

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{PG_ROLE}:{secret}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """One statement as the superuser, outside a transaction (CREATE DATABASE)."""
        engine = sa.create_engine(
            parse(self.url()).engine_url(), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        )
        with engine.connect() as con:
            con.exec_driver_sql(sql)
        engine.dispose()


def _postgres_bin() -> Path | None:
    """The newest installed server's bin dir (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: p.parts)
    return found[-1].parent if found else None


def _server_user() -> dict:
    """Popen's user= for the server: postgres refuses to run as root, so as root the
    system user PG_USER (created if missing), else whoever runs the tests."""
    if os.geteuid() != 0:
        return {}
    for _ in range(50):  # scripts/ensure-postgres creates it; else the first worker does
        try:
            group = pwd.getpwnam(PG_USER).pw_gid
            return {"user": PG_USER, "group": group, "extra_groups": []}
        except KeyError:
            subprocess.run(  # fails while another worker holds /etc/passwd: try again
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
                + [PG_USER],
                capture_output=True,
            )
            time.sleep(0.1)
    raise AssertionError(f"could not create the system user {PG_USER} (useradd)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test session (each xdist worker starts its own):
    initdb into a temp dir, postgres as a non-root user on a free port of 127.0.0.1
    only, its socket in that dir; stopped and removed at the end. Skipped only where
    Debian's package is not installed (scripts/ensure-postgres installs it)."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL is not installed (scripts/ensure-postgres installs Debian's "
            "postgresql; it needs root and the package registry)"
        )
    as_user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="soak-pg-"))
    password = "pw-" + secrets.token_hex(8)
    (root / "pwfile").write_text(password + "\n")
    if as_user:
        os.chown(root, pwd.getpwnam(PG_USER).pw_uid, as_user["group"])
        os.chown(root / "pwfile", pwd.getpwnam(PG_USER).pw_uid, as_user["group"])

    def run(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, cwd=root, **as_user)
        assert done.returncode == 0, f"{args[0]}: {done.stdout}{done.stderr}"

    data = root / "data"
    run(
        str(bindir / "initdb"), "-D", str(data), "-U", PG_ROLE, f"--pwfile={root / 'pwfile'}",
        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
    )  # fmt: skip
    server = None
    for _ in range(5):  # another worker may take the free port first
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
            "-c fsync=off -c max_connections=100 -c shared_buffers=16MB"
        )
        start = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w"]
        done = subprocess.run(
            [*start, "-t", "120", "-o", options, "start"], capture_output=True, cwd=root, **as_user
        )
        if done.returncode == 0:
            server = PostgresServer(port, password, root)
            break
    try:
        assert server is not None, (root / "log").read_text()
        yield server
    finally:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            cwd=root,
            **as_user,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[Callable[[], str]]:
    """postgres_database() -> the URL of a fresh, empty database on the session's server;
    each is dropped after the test."""
    made: list[str] = []

    def create() -> str:
        name = "h_" + uuid.uuid4().hex[:12]
        postgres_server.admin(f"CREATE DATABASE {name}")
        made.append(name)
        return postgres_server.url(name)

    yield create
    for name in made:
        postgres_server.admin(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_database: Callable[[], str]) -> str:
    """A fresh, empty database on the session's server, dropped after the test."""
    return postgres_database()


@dataclass(frozen=True)
class HistoryDb:
    """A history of one backend, as a test sees it: what a user gives (`where`), what
    soak prints for it (`shown`, a URL's password masked), and its rows."""

    backend: str  # "sqlite" or "postgresql"
    where: str  # a path or a postgresql:// URL

    @property
    def shown(self) -> str:
        return str(parse(self.where))

    def password_free(self, text: str) -> bool:
        """`text` does not show the URL's password."""
        url = parse(self.where).url
        return url is None or not url.password or str(url.password) not in text

    def execute(self, sql: str, **params: object) -> list[tuple]:
        """One SQL statement in its own transaction; its rows, if it returns any."""
        engine = sa.create_engine(parse(self.where).engine_url(), poolclass=sa.NullPool)
        try:
            with engine.begin() as con:
                result = con.execute(sa.text(sql), params)
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def history_db(request: pytest.FixtureRequest, tmp_path: Path) -> HistoryDb:
    """A history to record into, on each backend: an SQLite file (not there yet) and an
    empty PostgreSQL database (on the session's server)."""
    if request.param == "sqlite":
        return HistoryDb("sqlite", str(tmp_path / "hist" / "history.sqlite"))
    return HistoryDb("postgresql", request.getfixturevalue("postgres_url"))
