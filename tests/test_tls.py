"""An Ollama behind HTTPS (a TLS-terminating proxy in front of a remote GPU box): the node trusts the
certificate through the standard SSL_CERT_FILE and streams over TLS like over plain HTTP."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from ollama_server.testing import EmulatorProcess

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")


def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A test CA (ca.pem) and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    d = tmp_path_factory.mktemp("tls")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ollama_bridge test CA",
            "-keyout", d / "ca.key", "-out", d / "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", d / "key.pem", "-out", d / "req.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", d / "req.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", d / "ext.cnf", "-out", d / "cert.pem")
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def https_emulator(certificate):
    _, cert, key = certificate
    with EmulatorProcess(args=["--tls-cert", str(cert), "--tls-key", str(key)]) as emu:
        yield emu


def test_https_ollama_with_a_trusted_certificate(start_bridge, https_emulator, certificate):
    assert https_emulator.url.startswith("https://127.0.0.1:")
    node, ep = start_bridge(ollama_url=https_emulator.url, extra_env={"SSL_CERT_FILE": str(certificate[0])})
    ep.say("over TLS")
    final = ep.wait_finals(1)[0]
    assert final.done_reason == "stop", final.error
    assert final.text == 'You said: "over TLS". This is turn 1.'
    node.assert_healthy()


def test_an_untrusted_certificate_is_refused_with_a_clear_error(start_bridge, https_emulator):
    https_emulator.clear_requests()
    node, ep = start_bridge(ollama_url=https_emulator.url, max_retries=0)
    ep.say("over TLS")
    final = ep.wait_finals(1)[0]
    assert final.done_reason == "error"
    assert https_emulator.url in final.error and "certificate" in final.error.lower(), final.error
    assert not https_emulator.chat_bodies(), "nothing may be sent over an untrusted connection"
    node.assert_healthy()
