"""Issue 12, kind 1 on the real node: reasoning that a server leaves in `message.content` as a
`<think>…</think>` block (older Ollama servers, reasoning models with `think: false`,
Ollama-compatible servers) is never spoken.

The emulator's model `r1` sends its reasoning that way (`think_tag`), cut into pieces like a
tokenizer, or as the test says (`split_at`, `pieces`). For every variant the issue names (the
issue's own example, tags split across pieces, an empty block, whitespace after it, a block that
never closes, the `<thinking>` spelling) and a few more a server sends (one character per piece,
the whole block in one piece, whitespace before it, tags in capitals), on a node with `think: false`
and one with `think: true`:
* no reasoning and no tag in `response_partial`, `Response.text`, `response_text`,
  `response_sentence`, `response_sentence_text`, nor in the history (the next request's messages
  on the emulator's request log); the partials add up to the text and number `chunk_count`;
* the reasoning arrives on `response_thinking` with `think: true`, and nothing does with `think: false`.
"""
from __future__ import annotations

import itertools

import pytest
from std_msgs.msg import String

from harness import DEEP, Recorder, wait_until
from helpers import SYSTEM_TEXT, ask, conversation, joined_partials, messages, running_bridge
from ollama_bridge_msgs.msg import ResponseChunk, Sentence
from ollama_server.testing import raw_request

THINK = "\nThe user says hi. Keep it short.\n"
REPLY = "Hello! How can I help?"
R1 = {"r1": {"reply": REPLY, "thinking": THINK, "think_tag": "think", "capabilities": ["completion", "thinking"]}}
EXAMPLE = "<think>\nThe user says hi. Keep it short.\n</think>\n\nHello! How can I help?"   # the issue's reply

# name: (script fault for the request, the answer, the reasoning it carried (stripped))
VARIANTS = {
    "issue_example": ({}, REPLY, THINK.strip()),
    "tags_split_across_pieces": ({"split_at": [2, "nk>", "/th", "ink"]}, REPLY, THINK.strip()),
    "one_character_per_piece": ({"split_at": list(range(1, len(EXAMPLE)))}, REPLY, THINK.strip()),
    "pieces_cut_mid_tag_and_mid_gap": ({"pieces": ["<thi", "nk>\nHmm, {last_user}.\n</th", "ink>\n", "\nHello! How can I help?"]},
                                       REPLY, "Hmm, {prompt}."),
    "whole_block_and_answer_in_one_piece": ({"pieces": [EXAMPLE]}, REPLY, THINK.strip()),
    "empty_block": ({"thinking": ""}, REPLY, ""),
    "whitespace_after_block": ({"think_gap": "  \n \n\t"}, REPLY, THINK.strip()),
    "no_whitespace_after_block": ({"think_gap": ""}, REPLY, THINK.strip()),
    "whitespace_before_block": ({"pieces": ["\n", " \n", "<think>", "Plan the greeting.", "</think>", "\n", REPLY]},
                                REPLY, "Plan the greeting."),
    "block_never_closes": ({"think_close": False}, "", THINK.strip()),
    "thinking_spelling": ({"think_tag": "thinking"}, REPLY, THINK.strip()),
    "thinking_spelling_split": ({"think_tag": "thinking", "split_at": ["ing>", "/"]}, REPLY, THINK.strip()),
    "tags_in_capitals": ({"pieces": ["<Think>", "Plan the greeting.", "</THINK>", "\n\n", REPLY]}, REPLY,
                         "Plan the greeting."),
}
TAGS = ("<think", "</think", "<thinking", "</thinking")
_sessions = itertools.count()


class SpeechOutputs:
    """The node's speech-side topics: `response_thinking`, `response_sentence(_text)`."""

    def __init__(self, ros, ns):
        self.node = ros.node
        self.thinking, self.sentences, self.sentence_texts = Recorder(), Recorder(), Recorder()
        self.subs = [self.node.create_subscription(ResponseChunk, f"{ns}/response_thinking", self.thinking, DEEP),
                     self.node.create_subscription(Sentence, f"{ns}/response_sentence", self.sentences, DEEP),
                     self.node.create_subscription(String, f"{ns}/response_sentence_text", self.sentence_texts, DEEP)]
        wait_until(lambda: all(s.get_publisher_count() >= 1 for s in self.subs), 20, "the speech topics")

    def of(self, recorder, request_id):
        return [m.text for m in recorder.snapshot() if m.request_id == request_id]

    def destroy(self):
        for sub in self.subs:
            self.node.destroy_subscription(sub)


@pytest.fixture(scope="module", params=[False, True], ids=["think_false", "think_true"])
def bridge(request, ros, logs_dir, emulator):
    """One node per `think` value for the whole module: (think, node, endpoints, speech outputs)."""
    with running_bridge(ros, logs_dir, ollama_url=emulator.url, model="r1", think=request.param,
                        system_prompt=SYSTEM_TEXT) as (node, ep):
        speech = SpeechOutputs(ros, ep.ns)
        try:
            yield request.param, node, ep, speech
        finally:
            speech.destroy()


@pytest.mark.parametrize("variant", VARIANTS)
def test_reasoning_in_content_is_never_spoken_nor_kept(bridge, emu, variant):
    think, node, ep, speech = bridge
    script, answer, reasoning = VARIANTS[variant]
    for recorder in (ep.finals, ep.partials, ep.texts, speech.sentence_texts):
        recorder.clear()
    emu.set_models(R1)
    session, prompt = f"think{next(_sessions)}", f"hi {variant}"
    reasoning = reasoning.replace("{prompt}", prompt)
    emu.push_fault({"kind": "script", **script})
    final = ask(ep, prompt, session=session)
    assert (final.done_reason, final.error) == ("stop", ""), final
    assert final.text == answer, f"{variant}: Response.text {final.text!r}"

    # partials add up to the text, every one counted
    parts = joined_partials(ep, final) if answer else ep.partials_of(final.request_id)
    assert len(parts) == final.chunk_count, (len(parts), final.chunk_count)
    # the next request of the session carries the answer without reasoning
    emu.set_models({"r1": {"reply": "Fine.", "capabilities": ["completion", "thinking"]}})
    second = ask(ep, "and then?", session=session)
    history = messages(emu.wait_for_requests(2)[-1]["body"])
    assert history == conversation((prompt, answer), then="and then?"), history

    # sentences and the TTS topics: the answer only (the second answer's arrival orders the first's)
    wait_until(lambda: speech.of(speech.sentences, second.request_id), 10, "the second answer's sentence",
               speech.sentences.cond)
    sentences = speech.of(speech.sentences, final.request_id)
    assert " ".join(sentences) == answer, sentences
    wait_until(lambda: "Fine." in [t.data for t in ep.texts.snapshot()], 10, "the second answer on response_text",
               ep.texts.cond)
    wait_until(lambda: "Fine." in [t.data for t in speech.sentence_texts.snapshot()], 10,
               "the second answer on response_sentence_text", speech.sentence_texts.cond)
    spoken = [t.data for t in ep.texts.snapshot()]
    sentence_texts = [t.data for t in speech.sentence_texts.snapshot()]
    assert spoken[-1] == "Fine." and sentence_texts[-1] == "Fine."
    assert spoken[:-1] == ([answer] if answer else []), spoken
    assert sentence_texts[:-1] == sentences, sentence_texts

    published = [final.text, *(p.text for p in parts), *spoken, *sentences, *sentence_texts,
                 *(m["content"] for m in history)]
    for text in published:
        assert not any(tag in text.lower() for tag in TAGS), f"a tag was published: {text!r}"
        assert not reasoning or reasoning not in text, f"reasoning was published: {text!r}"

    thought = speech.of(speech.thinking, final.request_id)
    if think:
        # published before the final; the second answer's final came after it on the same writer
        assert "".join(thought).strip() == reasoning, thought
    else:
        assert thought == [], f"think is false, yet reasoning was published: {thought}"
    assert speech.of(speech.thinking, second.request_id) == []
    node.assert_healthy()


def test_the_issue_example_as_ollama_sends_it(emu):
    """The emulator sends exactly the issue's example (the premise of the variants above)."""
    emu.set_models(R1)
    got = raw_request(emu.url, "/api/chat", {"model": "r1", "messages": [{"role": "user", "content": "hi"}]})
    lines = got.json_lines()
    assert "".join(o["message"]["content"] for o in lines) == EXAMPLE
    assert not any(o["message"].get("thinking") for o in lines)
