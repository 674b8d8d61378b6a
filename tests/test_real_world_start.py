"""Issue 12, kind 9 (second half) on the real node: at start the node checks the server and the
model, says at WARN what is wrong (the configured model missing: with the models the server has;
the server unreachable: with its URL, password hidden), keeps running, and answers once the
server or the model appears, saying so at INFO."""
from __future__ import annotations

import re

from harness import wait_until
from helpers import ask, free_port
from ollama_server.testing import EmulatorProcess

STARTUP_MODELS = ("llama3.2:latest", "qwen3:0.6b", "smollm2:135m")   # what the emulator serves at start


def log_line(node, level: str, pattern: str, timeout: float = 15.0) -> str:
    """The first line of the node's console log at `level` whose message matches `pattern`."""
    regex = re.compile(rf"^\[{level}\] \[[0-9.]+\] \[[^\]]+\]: .*{pattern}", re.M)

    def found():
        match = regex.search(node.log())
        return match and node.log()[match.start():].splitlines()[0]
    try:
        return wait_until(found, timeout, f"a {level} log line matching {pattern!r}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{node.log()[-3000:]}") from None


def test_a_missing_model_is_logged_with_the_available_models_and_answered_once_it_appears(start_bridge, emu):
    node, ep = start_bridge(model="newbie", max_retries=0)
    warning = log_line(node, "WARN", "model 'newbie' is not on the server")
    assert emu.url in warning, warning
    for name in STARTUP_MODELS:
        assert name in warning, f"{name} not listed: {warning}"
    failed = ask(ep, "hello?")
    assert failed.done_reason == "error" and "not found" in failed.error, failed.error
    node.assert_healthy()

    emu.set_models({"newbie": {"reply": "Hi, I am new here."}})
    log_line(node, "INFO", "model 'newbie' is on the server now")
    answer = ask(ep, "hello now?")
    assert (answer.done_reason, answer.error, answer.text) == ("stop", "", "Hi, I am new here."), answer
    assert node.log().count("model 'newbie' is not on the server") == 1, "said once, not every probe"
    node.assert_healthy()


def test_an_unreachable_server_at_start_is_logged_with_its_url_then_answers_once_it_runs(start_bridge):
    port = free_port()
    node, ep = start_bridge(ollama_url=f"http://robot:pw-Start-1@127.0.0.1:{port}", max_retries=0)
    warning = log_line(node, "WARN", "unreachable")
    assert f"http://robot:***@127.0.0.1:{port}" in warning and "refused" in warning.lower(), warning
    assert ask(ep, "anyone?").done_reason == "error"
    with EmulatorProcess(port=port) as late:
        log_line(node, "INFO", "answers again")
        answer = ask(ep, "now?")
        assert (answer.done_reason, answer.error) == ("stop", ""), answer
        assert late.chat_bodies()[-1]["model"] == "llama3.2"
    assert "pw-Start-1" not in node.log()
    node.assert_healthy()


def test_a_server_that_comes_up_without_the_model_names_the_models_it_has(start_bridge):
    port = free_port()
    node, ep = start_bridge(ollama_url=f"http://127.0.0.1:{port}", model="later", max_retries=0)
    log_line(node, "WARN", "unreachable")
    with EmulatorProcess(port=port, args=["--models", "smollm2:135m"]) as late:
        warning = log_line(node, "WARN", "model 'later' is not on the server")
        assert "smollm2:135m" in warning and "llama3.2" not in warning, warning
        late.set_models({"later": {"reply": "Here at last."}})
        log_line(node, "INFO", "model 'later' is on the server now")
        assert ask(ep, "there?").text == "Here at last."
    node.assert_healthy()
