"""Fixtures shared by the emulator's own tests: one emulator per test module, reset before each
test, and raw chat requests whose every socket read is recorded."""
from __future__ import annotations

import pytest

from ollama_server.testing import EmulatorProcess, raw_request


def module_emulator(config: dict, args: tuple = ()):
    """A module-scoped `emu` fixture serving `config`; assign it to `emu` in the test module."""
    @pytest.fixture(scope="module")
    def emu():
        with EmulatorProcess(config=config, args=list(args)) as e:
            yield e
    return emu


@pytest.fixture(autouse=True)
def fresh(emu):
    """Start-up models, no faults, an empty request log."""
    emu.reset()


def chat(emu, body, **kw):
    """POST /api/chat over a raw socket (see `ollama_server.testing.raw_request`)."""
    return raw_request(emu.url, "/api/chat", body, **kw)


def openai_chat(emu, body, **kw):
    """POST /v1/chat/completions over a raw socket (``.sse()`` decodes the events)."""
    return raw_request(emu.url, "/v1/chat/completions", body, **kw)
