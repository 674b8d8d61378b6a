"""Sentences for text-to-speech on the real node: `response_sentence` / `response_sentence_text`
carry each sentence of an answer as soon as its end arrived (before the rest of the answer is
streamed), numbered 0, 1, ... per request; with `speech_filter` they and `response_text` are
speakable (no Markdown, no emoji) while the partials and `Response.text` stay raw. The emulator
cuts the replies into pieces (tokenizer-like, at awkward points, one char each, all at once)."""
from __future__ import annotations

import re

import pytest

from harness import SpeechTopics, fresh_namespace, wait_until
from helpers import ask, joined_partials

EXAMPLE = "Dr. Smith measured 3.14 meters, e.g. at the lab. Then he left! Did he return? Yes, he did."
EXAMPLE_SENTENCES = ["Dr. Smith measured 3.14 meters, e.g. at the lab.", "Then he left!", "Did he return?",
                     "Yes, he did."]
# Cuts inside the tokens that decide a boundary: "Dr|.", "3|.|14", "e.|g.", "lab|.| Then", "left|!"
AWKWARD = {"split_at": ["Dr", ". Smith", ".14", "14", "g.", ". Then", " Then", "! Did", "? Yes", " did", "did."]}
SPLITS = {
    "tokenizer-like": {},
    "awkward cuts": AWKWARD,
    "one char per piece": {"pieces": list(EXAMPLE)},
    "all in one piece": {"pieces": [EXAMPLE]},
}


@pytest.fixture
def speaking_node(ros, start_bridge):
    """(endpoints, SpeechTopics) of a node started with `params`, settled on the sentence topics."""
    made = []

    def start(**params):
        ns = fresh_namespace("speech")
        topics = SpeechTopics(ros, ns)
        made.append(topics)
        _, ep = start_bridge(namespace=ns, **params)
        topics.settle(ep)
        return ep, topics
    yield start
    for topics in made:
        topics.destroy()


def answer(ep, topics, emu, script: dict, text="tell me"):
    """Asks once with the emulator's model scripted as `script`; returns (final, its sentences,
    its response_text) once all arrived: its partials, its response_text, and sentences that
    joined with one space make that text."""
    emu.set_models({"llama3.2": script})
    n_texts = len(ep.texts.snapshot())
    final = ask(ep, text, session="speech")
    assert final.done_reason == "stop", final.error
    joined_partials(ep, final)
    speech = ep.texts.wait_count(n_texts + 1, 10, "response_text")[n_texts].data
    sentences = wait_until(lambda: (lambda got: got if " ".join(s.text for s in got) == speech else None)(
        topics.of(final.request_id)), 10, f"the sentences of request {final.request_id} to make {speech!r} "
        f"(have {[s.text for s in topics.of(final.request_id)]})", topics.sentences.cond)
    return final, sentences, speech


def no_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("split", SPLITS)
def test_the_issue_example_gives_four_sentences_however_it_is_split(speaking_node, emu, split):
    ep, topics = speaking_node()
    final, sentences, speech = answer(ep, topics, emu, {"reply": EXAMPLE, **SPLITS[split]})
    assert final.text == EXAMPLE
    assert [(s.index, s.text) for s in sentences] == list(enumerate(EXAMPLE_SENTENCES))
    assert all((s.session_id, s.request_id) == ("speech", final.request_id) for s in sentences)
    assert [t.data for t in topics.texts.wait_count(len(EXAMPLE_SENTENCES), 10, "sentence texts")] == EXAMPLE_SENTENCES
    assert speech == EXAMPLE


def test_each_sentence_arrives_before_the_rest_of_the_answer(speaking_node, emu):
    """Event order, not timing: with a paced model (30 ms a piece), sentence i arrives before the
    partial that follows the text completing it (the first letter after `.`, or the line break),
    so before the rest of the answer and before the final. The trailing line breaks (cut in two)
    let the last sentence end before the stream does."""
    ep, topics = speaking_node()
    reply = EXAMPLE + "\n\n"
    final, sentences, speech = answer(ep, topics, emu, {"reply": reply, "chunk_delay_ms": 30, "split_at": [-1]})
    assert [s.text for s in sentences] == EXAMPLE_SENTENCES
    events = [(kind, m) for kind, m in topics.events.snapshot() if m.request_id == final.request_id]
    partial_starts, offset = [], 0             # (event position, offset of the partial's first char)
    for at, (kind, m) in enumerate(events):
        if kind == "partial":
            partial_starts.append((at, offset))
            offset += len(m.text)
    assert offset == len(reply)
    final_at = next(at for at, (kind, _) in enumerate(events) if kind == "final")
    end = 0
    for sentence in sentences:
        end = reply.index(sentence.text, end) + len(sentence.text)
        completes = end if reply[end] == "\n" else end + len(reply[end:]) - len(reply[end:].lstrip())
        sentence_at = next(at for at, (kind, m) in enumerate(events) if kind == "sentence" and m.index == sentence.index)
        after = next(at for at, start in partial_starts if start > completes)
        assert sentence_at < after, f"sentence {sentence.index} came after the partial at {after}: {events}"
        assert sentence_at < final_at


FILTERED = ("## Plan\n**Step one:** open the [door](https://example.com/door) 🚪 now.\n"
            "- Then *wave* hello 👋 to everyone!\n```\nrm -rf /tmp/x\n```\nDone, all good 🎉.")


@pytest.mark.parametrize("speech_filter", [True, False], ids=["filter on", "filter off"])
def test_markdown_and_emoji_are_filtered_from_speech_only(speaking_node, emu, speech_filter):
    ep, topics = speaking_node(speech_filter=speech_filter)
    final, sentences, speech = answer(ep, topics, emu, {"reply": FILTERED})
    assert final.text == FILTERED                                   # Response.text stays raw
    assert "".join(p.text for p in ep.partials_of(final.request_id)) == FILTERED
    texts = [s.text for s in sentences]
    if speech_filter:
        assert texts == ["Plan Step one: open the door now.", "Then wave hello to everyone!", "Done, all good."]
        assert speech == " ".join(texts)
    else:
        # raw: lines shorter than min_sentence_chars join the next one, line break included
        assert texts == ["## Plan\n**Step one:** open the [door](https://example.com/door) 🚪 now.",
                         "- Then *wave* hello 👋 to everyone!", "```\nrm -rf /tmp/x", "```\nDone, all good 🎉."]
    assert [t.data for t in topics.texts.wait_count(len(texts), 10, "sentence texts")] == texts
    assert [s.index for s in sentences] == list(range(len(sentences)))


def test_min_and_max_sentence_chars_are_parameters(speaking_node, emu):
    short = "Hi. Ok. I am here now. Yes."
    run_on = "one two three, four five six seven, eight nine ten eleven twelve thirteen fourteen"
    ep, topics = speaking_node()
    _, sentences, _ = answer(ep, topics, emu, {"reply": short})
    assert [s.text for s in sentences] == ["Hi. Ok. I am here now.", "Yes."]      # default 10: short ones join
    assert ep.set_params(min_sentence_chars=0, max_sentence_chars=40)[0].successful
    _, sentences, _ = answer(ep, topics, emu, {"reply": short})
    assert [s.text for s in sentences] == ["Hi.", "Ok.", "I am here now.", "Yes."]
    _, sentences, _ = answer(ep, topics, emu, {"reply": run_on})
    assert [s.text for s in sentences] == ["one two three, four five six seven,",   # the last comma
                                           "eight nine ten eleven twelve thirteen",  # else the last space
                                           "fourteen"]
    assert all(len(s.text) <= 40 for s in sentences)
    refused = ep.set_params(min_sentence_chars=50, max_sentence_chars=40)[0]
    assert not refused.successful and "must be smaller than max_sentence_chars" in refused.reason


JOIN_CASES = {
    "example": EXAMPLE,
    "markdown and emoji": FILTERED,
    "numbers, urls, files": ("Pi is 3.14 and 1,000.5 is big. See https://example.com/a.b?c=d for it! Mail "
                             "bob@example.com or open config.yaml first. J. R. R. Tolkien wrote it, i.e. the book."),
    "cjk and ellipsis": "你好。今天天气很好！你呢？Well… Then we go. wait... what",
    "lists and lines": "Steps:\n1. Open the box.\n2. Take the robot out.\n\nThat is all.",
}


@pytest.mark.parametrize("speech_filter", [True, False], ids=["filter on", "filter off"])
def test_the_sentences_joined_are_the_final_text(speaking_node, emu, speech_filter):
    """The sentences of an answer, joined with one space, equal its speakable text (response_text)
    and, with the filter off, Response.text up to whitespace."""
    ep, topics = speaking_node(speech_filter=speech_filter, min_sentence_chars=0)
    for name, reply in JOIN_CASES.items():
        final, sentences, speech = answer(ep, topics, emu, {"reply": reply, "split_at": [5, 11, 17, 23]})
        joined = " ".join(s.text for s in sentences)
        assert joined == speech, name
        assert all(s.text == s.text.strip() and s.text for s in sentences), name
        if not speech_filter:
            assert no_space(joined) == no_space(final.text), name
