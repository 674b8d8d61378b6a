"""Issue 12, kind 2 on the real node: credentials in the server URL, behind a Basic-auth reverse
proxy on loopback (`basic_auth_proxy.py`, nginx's `auth_basic` in front of the emulator).

`ollama_url` and every `OLLAMA_HOST` form with `user:password@` work (the answers arrive, the proxy
saw `Authorization: Basic ...`), and the password (nor the header made of it) appears nowhere the
node writes: the console log at debug level, /rosout, `Response.server`, `Response.error` of the
failures a user meets (wrong password: 401; proxy down: connection refused), the `set_model`
answer (missing model), `ros2 param get ollama_url`, /parameter_events and /diagnostics."""
from __future__ import annotations

import shutil

import pytest

from basic_auth_proxy import BasicAuthProxy, basic
from harness import wait_until
from helpers import ask
from test_diagnostics import diagnostics  # noqa: F401 (a fixture)
from test_node_citizen import rosout_recorder
from test_params import param_events  # noqa: F401 (a fixture)
from test_ros_cli import ros2, wait_for_node_in_graph

USER, PASSWORD = "robot", "s3cret-Pw-77"
DEBUG = ["--log-level", "debug"]


@pytest.fixture
def proxy(emu):
    with BasicAuthProxy(emu.url, USER, PASSWORD) as p:
        yield p


def leaks(text: str, *secrets: str) -> list[str]:
    """The lines of `text` that show any of `secrets` (the password, its Basic header)."""
    return [line for line in text.splitlines() if any(s in line for s in secrets)]


def logger_of(ep) -> str:
    return f"{ep.ns[1:].replace('/', '.')}.ollama_bridge"


def test_url_credentials_are_sent_as_basic_auth_and_the_password_is_shown_nowhere(
        ros, start_bridge, emu, proxy, param_events, diagnostics):  # noqa: F811
    secrets = (PASSWORD, basic(USER, PASSWORD).split()[1])
    shown = f"http://{USER}:***@127.0.0.1:{proxy.port}"
    rosout, rosout_sub = rosout_recorder(ros)
    events, cond = param_events
    try:
        node, ep = start_bridge(ollama_url=f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}", extra_args=DEBUG)
        answer = ask(ep, "hello through the proxy")
        assert (answer.done_reason, answer.error) == ("stop", ""), answer
        assert answer.text == 'You said: "hello through the proxy". This is turn 1.'
        assert answer.server == shown
        assert proxy.authorizations and set(proxy.authorizations) == {basic(USER, PASSWORD)}, proxy.authorizations
        assert emu.requests()[-1]["headers"].get("authorization") is None, "the proxy consumed the credentials"

        refused = ep.set_model("ghost")
        assert not refused.success and shown in refused.message and "ghost" in refused.message, refused.message
        assert ep.get_params("ollama_url") == [shown]
        wait_for_node_in_graph(f"{ep.ns}/ollama_bridge")
        assert shown in ros2(f"ros2 param get {ep.ns}/ollama_bridge ollama_url")
        status, values = diagnostics(ep).next("OK")
        assert status.hardware_id == shown and values["ollama_url"] == shown, status
        assert shown in status.message

        # a tool that writes back what it read (the password stays); the change is published
        [written_back] = ep.set_params(ollama_url=shown)
        assert written_back.successful, written_back.reason
        me = f"{ep.ns}/ollama_bridge"
        wait_until(lambda: any(e.node == me and e.changed_parameters for e in events), 20, "the change event", cond)
        published = [p.value.string_value for e in events if e.node == me
                     for p in e.new_parameters + e.changed_parameters if p.name == "ollama_url"]
        assert published and set(published) == {shown}, published
        assert ask(ep, "still through the proxy?").done_reason == "stop"

        mine = lambda: [m.msg for m in rosout.snapshot() if m.name == logger_of(ep)]  # noqa: E731
        wait_until(lambda: any("ready:" in m for m in mine()), 20, "the ready line on /rosout", rosout.cond)
        assert not leaks("\n".join(mine()), *secrets)
        log = node.log()
        assert "[DEBUG]" in log and shown in log, "the node ran at debug level and logged the URL"
        assert not leaks(log, *secrets), leaks(log, *secrets)
        node.assert_healthy()
    finally:
        ros.node.destroy_subscription(rosout_sub)
        if shutil.which("ros2"):
            __import__("subprocess").run(["ros2", "daemon", "stop"], capture_output=True)


def test_a_wrong_password_is_a_401_that_shows_no_password(start_bridge, emu, proxy):
    wrong = "Wr0ng-pass-99"
    node, ep = start_bridge(ollama_url=f"http://{USER}:{wrong}@127.0.0.1:{proxy.port}", max_retries=0,
                            extra_args=DEBUG)
    failed = ask(ep, "let me in")
    assert failed.done_reason == "error" and "HTTP 401" in failed.error, failed.error
    assert f"http://{USER}:***@127.0.0.1:{proxy.port}" in failed.error, failed.error
    assert wrong not in failed.error and proxy.authorizations[-1] == basic(USER, wrong)
    assert emu.requests() == [], "nothing passed the proxy"
    log = node.log()
    assert not leaks(log, wrong, basic(USER, wrong).split()[1]), leaks(log, wrong)
    node.assert_healthy()


def test_the_proxy_down_is_connection_refused_and_shows_no_password(start_bridge, emu, proxy, diagnostics):  # noqa: F811
    shown = f"http://{USER}:***@127.0.0.1:{proxy.port}"
    node, ep = start_bridge(ollama_url=f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}", max_retries=0,
                            extra_args=DEBUG)
    assert ask(ep, "first").done_reason == "stop"
    watch = diagnostics(ep)
    proxy.stop()
    failed = ask(ep, "anyone there?")
    assert failed.done_reason == "error" and "refused" in failed.error.lower(), failed.error
    assert shown in failed.error and PASSWORD not in failed.error, failed.error
    status, values = watch.next("ERROR")
    assert PASSWORD not in status.message and "refused" in status.message.lower(), status.message
    assert all(PASSWORD not in kv.value for kv in status.values)
    refused = ep.set_model("qwen3:0.6b")
    assert not refused.success and PASSWORD not in refused.message and shown in refused.message, refused.message
    assert not leaks(node.log(), PASSWORD), leaks(node.log(), PASSWORD)
    node.assert_healthy()


# OLLAMA_HOST as people write it (Ollama's envconfig.Host: scheme optional), each behind the proxy.
# The password of the last one is percent-encoded in the URL (RFC 3986): `p@ss:w/rd` is sent.
HOST_FORMS = {
    "no_scheme": ("{user}:{pw}@127.0.0.1:{port}", PASSWORD, PASSWORD),
    "http": ("http://{user}:{pw}@127.0.0.1:{port}", PASSWORD, PASSWORD),
    "http_trailing_slash": ("http://{user}:{pw}@127.0.0.1:{port}/", PASSWORD, PASSWORD),
    "percent_encoded_password": ("http://{user}:{pw}@127.0.0.1:{port}", "p%40ss%3Aw%2Frd", "p@ss:w/rd"),
}


@pytest.mark.parametrize("form", HOST_FORMS)
def test_ollama_host_with_credentials(start_bridge, emu, form):
    template, written, sent = HOST_FORMS[form]
    with BasicAuthProxy(emu.url, USER, sent) as proxy:
        host = template.format(user=USER, pw=written, port=proxy.port)
        node, ep = start_bridge(ollama_url="", extra_env={"OLLAMA_HOST": host}, extra_args=DEBUG)
        answer = ask(ep, "hello from the environment")
        assert (answer.done_reason, answer.error) == ("stop", ""), answer
        assert answer.server == f"http://{USER}:***@127.0.0.1:{proxy.port}", answer.server
        assert set(proxy.authorizations) == {basic(USER, sent)}, proxy.authorizations
        log = node.log()
        assert not leaks(log, written, sent, basic(USER, sent).split()[1]), leaks(log, written, sent)
        node.assert_healthy()
