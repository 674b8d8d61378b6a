use super::*;
use crate::speech::test_util::{random_pieces, Rng};

const REPLY: &str = "<think>\nThe user says hi. Keep it short.\n</think>\n\n\
    Hello! How can I help? I am **Robo** 🤖, your helper.\n\n\
    Try this:\n```sh\nls -l\n```\n1. Ask me anything.\n2. Or say [stop](https://example.com).";

const ANSWER: &str = "Hello! How can I help? I am **Robo** 🤖, your helper.\n\n\
    Try this:\n```sh\nls -l\n```\n1. Ask me anything.\n2. Or say [stop](https://example.com).";

fn run(config: SpeechConfig, pieces: &[String]) -> SpeechStep {
    let mut stream = SpeechStream::new(config);
    let mut total = SpeechStep::default();
    let steps = pieces.iter().map(|p| stream.push(p)).collect::<Vec<_>>();
    for step in steps.into_iter().chain([stream.finish()]) {
        total.answer.push_str(&step.answer);
        total.thinking.push_str(&step.thinking);
        total.sentences.extend(step.sentences);
    }
    total
}

fn texts(step: &SpeechStep) -> Vec<(u32, &str)> {
    step.sentences.iter().map(|s| (s.index, s.text.as_str())).collect()
}

#[test]
fn reply_with_thinking_markdown_and_emoji_over_random_splits() {
    let mut rng = Rng::new(7);
    for round in 0..200 {
        let pieces = random_pieces(REPLY, &mut rng, 1 + round % 12);
        let filtered = run(SpeechConfig::default(), &pieces);
        assert_eq!(filtered.answer, ANSWER, "pieces {pieces:?}");
        assert_eq!(filtered.thinking, "The user says hi. Keep it short.\n");
        assert_eq!(texts(&filtered), [
            (0, "Hello! How can I help?"),
            (1, "I am Robo, your helper."),
            (2, "Try this:"),
            (3, "Ask me anything."),
            (4, "Or say stop."),
        ], "pieces {pieces:?}");
        let raw = run(SpeechConfig { speech_filter: false, ..SpeechConfig::default() }, &pieces);
        assert_eq!(texts(&raw), [
            (0, "Hello! How can I help?"),
            (1, "I am **Robo** 🤖, your helper."),
            (2, "Try this:\n```sh"),
            (3, "ls -l\n```\n1. Ask me anything."),
            (4, "2. Or say [stop](https://example.com)."),
        ], "pieces {pieces:?}");
    }
}

#[test]
fn sentences_come_out_while_streaming_and_thinking_is_reported() {
    let mut stream = SpeechStream::new(SpeechConfig::default());
    let step = stream.push("<think>plan");
    assert!(stream.in_thinking());
    assert_eq!((step.answer.as_str(), step.thinking.as_str()), ("", "plan"));
    assert!(stream.push("</think>").sentences.is_empty());
    assert!(!stream.in_thinking());
    assert!(stream.push("Then he left the room!").sentences.is_empty());
    let step = stream.push(" Did");
    assert_eq!(step.answer, " Did");
    assert_eq!(texts(&step), [(0, "Then he left the room!")]);
    assert_eq!(texts(&stream.finish()), [(1, "Did")]);
}

#[test]
fn unclosed_think_block_speaks_nothing() {
    let out = run(SpeechConfig::default(), &["<think>I wonder. Maybe.".to_string(), " Yes!".to_string()]);
    assert_eq!((out.answer.as_str(), out.thinking.as_str()), ("", "I wonder. Maybe. Yes!"));
    assert!(out.sentences.is_empty());
}
