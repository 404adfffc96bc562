"""Fixtures of the A2A suite (docs/a2a.md): routers started on free 127.0.0.1 ports in a temporary
directory, stopped at the end of each test (a router that became ready must then exit 0)."""
import os
import tempfile

import pytest

from harness import A2ARouter


@pytest.fixture
def tmpdir_path():
    with tempfile.TemporaryDirectory(prefix="sb-a2a-") as d:
        yield d


@pytest.fixture
def start_router(tmpdir_path):
    """start_router(config_extra="", agents=None) -> a started A2ARouter; each call gets its own
    directory. Agents default to harness.DEFAULT_AGENTS (alice and bob, pull)."""
    started = []

    def start(config_extra="", agents=None):
        d = os.path.join(tmpdir_path, f"router-{len(started)}")
        os.makedirs(d)
        r = A2ARouter(d, config_extra, agents)
        started.append(r)
        r.start()
        r.was_ready = True
        return r

    yield start
    for r in started:
        # a router that never became ready (its config refused, say) failed its test already
        r.stop(expect_clean=getattr(r, "was_ready", False))


@pytest.fixture(scope="module")
def shared_router():
    """One router (default agents and config) for a module's tests that change nothing in it, such as
    calls that must be refused."""
    with tempfile.TemporaryDirectory(prefix="sb-a2a-") as d:
        r = A2ARouter(d).start()
        yield r
        r.stop()
