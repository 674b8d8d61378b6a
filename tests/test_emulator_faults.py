"""Every fault kind, observed from a raw socket client: what bytes arrive, in which reads, when."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ollama_server.testing import EmulatorError, EmulatorProcess, raw_request  # noqa: E402
from emulator_fixtures import chat as raw_chat, fresh, module_emulator  # noqa: E402,F401

REPLY = "alpha beta gamma delta epsilon zeta eta theta"          # 8 content lines
CONFIG = {"models": {"llama3.2": {"reply": REPLY}, "other": {"reply": "x y"},
                     "flaky": {"reply": "a b c", "faults": [{"kind": "error_line", "after": 1, "message": "boom"}]}}}
USER = [{"role": "user", "content": "hi"}]
BODY = {"model": "llama3.2", "messages": USER}


emu = module_emulator(CONFIG)


def chat(emu, body=BODY, **kw):
    return raw_chat(emu, body, **kw)


def is_json(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("status,text", [
    (400, '"llama3.2" does not support chat'),
    (404, 'model "llama3.2" not found, try pulling it first'),
    (429, "too many requests"),
    (500, "the model failed to generate a response"),
    (503, "server busy, please try again.  maximum pending requests exceeded"),
])
def test_status_faults_carry_ollamas_error_bodies(emu, status, text):
    emu.push_fault({"kind": "status", "status": status})
    got = chat(emu)
    assert got.status == status and got.json_lines() == [{"error": text}]
    assert got.header("Content-Type") == "application/json; charset=utf-8"
    assert chat(emu).status == 200                      # one-shot


def test_proxy_502_is_not_json(emu):
    emu.push_fault({"kind": "status", "status": 502})
    got = chat(emu)
    assert got.status == 502 and got.header("Content-Type") == "text/html"
    assert got.body.startswith(b"<html>") and not is_json(got.body)


def test_error_line_after_n_chunks_keeps_status_200_and_ends_the_stream(emu):
    emu.push_fault({"kind": "error_line", "after": 3})
    got = chat(emu)
    assert got.status == 200 and got.complete           # terminating chunk sent, as gin does
    lines = got.json_lines()
    assert len(lines) == 4 and all(not l["done"] for l in lines[:3])
    assert lines[3] == {"error": "an error was encountered while running the model"}


def test_error_line_before_any_output_becomes_a_500(emu):
    emu.push_fault({"kind": "error_line", "after": 0, "message": "llama runner process has terminated"})
    got = chat(emu)
    assert got.status == 500 and got.json_lines() == [{"error": "llama runner process has terminated"}]


def test_cut_closes_without_final_line_or_terminating_chunk(emu):
    emu.push_fault({"kind": "cut", "after": 2})
    got = chat(emu)
    assert got.eof and not got.complete and got.status == 200
    assert len(got.json_lines()) == 2 and not any(o["done"] for o in got.json_lines())
    assert not got.data.endswith(b"0\r\n\r\n")
    [entry] = emu.wait_for_requests(1)
    assert entry["outcome"]["result"] == "cut"


def test_cut_before_headers_sends_nothing(emu):
    emu.push_fault({"kind": "cut", "after": 0, "reset": True})
    got = chat(emu)
    assert got.eof and got.data == b""


def test_truncate_ends_cleanly_without_the_done_line(emu):
    emu.push_fault({"kind": "truncate", "after": 2})
    got = chat(emu)
    assert got.complete and len(got.json_lines()) == 2 and not got.json_lines()[-1]["done"]


def test_stall_before_headers_sends_nothing_for_t(emu):
    emu.push_fault({"kind": "stall", "seconds": 0.6, "after": 0})
    got = chat(emu)
    assert got.reads[0][0] >= 0.55 and got.complete
    assert got.reads[0][1].startswith(b"HTTP/1.1 200 OK")


def test_stall_after_n_chunks_leaves_a_gap(emu):
    emu.push_fault({"kind": "stall", "seconds": 0.6, "after": 2})
    seen = []
    got = chat(emu, on_read=lambda ex: seen.append((ex.reads[-1][0], len(ex.lines))) and False)
    assert got.complete
    before = max(t for t, n in seen if n <= 2)
    after = min(t for t, n in seen if n > 2)
    assert after - before >= 0.55


def test_stall_then_cut(emu):
    emu.push_fault({"kind": "stall", "seconds": 0.3, "after": 1, "then": "cut"})
    got = chat(emu)
    assert got.eof and not got.complete and len(got.lines) == 1


def test_malformed_line_after_n(emu):
    emu.push_fault({"kind": "malformed", "after": 2})
    got = chat(emu)
    flags = [is_json(l) for l in got.lines]
    assert flags[:2] == [True, True] and flags[2] is False and all(flags[3:]) and got.complete


def test_split_lines_arrive_in_two_reads(emu):
    emu.push_fault({"kind": "split_lines", "at": "utf8"})
    emu.set_models({"llama3.2": {"reply": "naïve café"}})
    got = chat(emu)
    assert got.complete and "".join(o["message"]["content"] for o in got.json_lines()) == "naïve café"
    reads = [d for _, d in got.reads]
    for line in got.lines:
        assert not any(line in r for r in reads), line     # never whole inside one read
    cut_inside_char = [r for r in reads if r.endswith(b"\xc3")]
    assert cut_inside_char                                   # a read ends inside "ï"/"é"


def test_trickle_sends_single_bytes(emu):
    emu.set_models({"llama3.2": {"reply": "hi"}})
    emu.push_fault({"kind": "trickle", "byte_delay_ms": 0.5})
    got = chat(emu)
    assert got.complete and got.json_lines()[-1]["done"]
    assert sum(len(d) == 1 for _, d in got.reads) > 0.5 * len(got.reads) and len(got.reads) > 100


def test_long_line_exceeds_the_go_client_limit(emu):
    emu.push_fault({"kind": "long_line", "after": 1})
    got = chat(emu, timeout=30)
    sizes = [len(l) + 1 for l in got.lines]
    assert sizes[1] > 8_000_000 and is_json(got.lines[1]) and got.complete


def test_timing_override_for_one_request(emu):
    emu.push_fault({"kind": "timing", "ttft_ms": 400})
    assert chat(emu).reads[0][0] >= 0.38
    assert chat(emu).reads[0][0] < 0.3


def test_count_model_filter_and_load_requests(emu):
    emu.push_fault({"kind": "status", "status": 500, "count": 2, "model": "llama3.2"})
    assert chat(emu, {"model": "other", "messages": USER}).status == 200      # other model: untouched
    assert chat(emu, {"model": "llama3.2", "messages": []}).status == 200     # load requests skipped
    assert [chat(emu).status for _ in range(3)] == [500, 500, 200]
    emu.push_fault({"kind": "status", "status": 503, "include_load": True})
    assert chat(emu, {"model": "llama3.2", "messages": []}).status == 503


def test_combined_faults_and_persistent_model_faults(emu):
    emu.push_fault({"all": [{"kind": "split_lines"}, {"kind": "cut", "after": 1}]})
    got = chat(emu)
    assert got.eof and len(got.lines) == 1 and len(got.reads) >= 2
    flaky = chat(emu, {"model": "flaky", "messages": USER}).json_lines()
    assert flaky[-1] == {"error": "boom"} and len(flaky) == 2
    assert chat(emu, {"model": "flaky", "messages": USER}).json_lines()[-1] == {"error": "boom"}


def test_bad_fault_specs_are_refused(emu):
    for bad in ({"kind": "explode"}, {"kind": "cut", "after": -1}, {"kind": "status", "status": 200},
                {"kind": "stall"}):
        with pytest.raises(EmulatorError, match="400"):
            emu.push_fault(bad)
    assert emu.call("GET", "/_emulator/faults") == {"faults": []}


def test_non_streaming_faults(emu):
    body = dict(BODY, stream=False)
    emu.push_fault({"kind": "error_line", "after": 2})
    got = chat(emu, body)
    assert got.status == 500 and got.json_lines() == [{"error": "an error was encountered while running the model"}]
    emu.push_fault({"kind": "cut", "after": 2})
    assert chat(emu, body).data == b""
    emu.push_fault({"kind": "malformed"})
    bad = chat(emu, body)
    assert bad.status == 200 and bad.complete and not is_json(bad.body)
