"""Shared fixtures: a private ROS domain, one rclpy client, the Ollama emulator, and a factory
that starts the real node binary in a fresh namespace and stops it cleanly after the test."""
from __future__ import annotations

import os
import random
import signal
import sys
import tempfile
from pathlib import Path

import pytest

# A private, localhost-only ROS graph for this test run (set before rclpy is imported anywhere).
os.environ["ROS_DOMAIN_ID"] = os.environ.get("OB_TEST_DOMAIN_ID", str(random.Random(os.getpid()).randint(10, 100)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)
os.environ.setdefault("ROS_HOME", tempfile.mkdtemp(prefix="ob-ros-home-"))
os.environ.pop("OLLAMA_HOST", None)
os.environ.pop("OLLAMA_API_KEY", None)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import NodeProcess, RosClient, fresh_namespace  # noqa: E402
from ollama_server.testing import EmulatorProcess  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs a real model on the CPU (llama.cpp); -m 'not slow' leaves it out")


@pytest.fixture(scope="session")
def ros():
    client = RosClient()
    yield client
    client.close()


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def emulator():
    """The Ollama emulator (scripted backend) on a free loopback port."""
    with EmulatorProcess() as emu:
        yield emu


@pytest.fixture
def emu(emulator):
    """The module's emulator, with a clean request log and no leftover faults."""
    emulator.reset()
    yield emulator


@pytest.fixture
def start_bridge(ros, logs_dir, emu):
    """Starts the real node; returns (NodeProcess, BridgeEndpoints) once everything is matched.
    After the test the node gets SIGINT and must exit 0 without a panic."""
    started = []

    def start(extra_env=None, extra_args=None, expect_ready=True, namespace=None, **params):
        params.setdefault("ollama_url", emu.url)
        params.setdefault("model", "llama3.2")
        params.setdefault("system_prompt", "You are a test robot.")
        # No warm-up load in the request logs the tests read (tests/test_warm_up.py turns it on;
        # warm_up=None starts the node with its own default)
        params.setdefault("warm_up", False)
        params = {k: v for k, v in params.items() if v is not None}
        ns = fresh_namespace() if namespace is None else namespace  # "" = the root namespace
        node = NodeProcess(ns, params, logs_dir, extra_env, extra_args)
        endpoints = ros.endpoints(ns)
        started.append((node, endpoints))
        if expect_ready:
            try:
                endpoints.wait_ready()
            except AssertionError:
                raise AssertionError(f"node not ready:\n{node.log()[-3000:]}")
        return node, endpoints

    yield start
    for node, endpoints in started:
        was_alive = node.alive()
        code = node.stop(signal.SIGINT)
        endpoints.destroy()
        log = node.log()
        assert "panicked" not in log, f"node panicked:\n{log[-4000:]}"
        if was_alive:
            assert code == 0, f"node exited with {code} on SIGINT:\n{log[-3000:]}"
