use super::*;
use crate::speech::test_util::{all_two_piece_splits, random_pieces, Rng};

/// (name, input, answer, thinking)
const CASES: &[(&str, &str, &str, &str)] = &[
    ("issue example", "<think>\nThe user says hi. Keep it short.\n</think>\n\nHello! How can I help?",
        "Hello! How can I help?", "The user says hi. Keep it short.\n"),
    ("no block", "Hello there. How are you?", "Hello there. How are you?", ""),
    ("no block keeps leading whitespace", " \n Hello", " \n Hello", ""),
    ("empty block", "<think></think>Hi.", "Hi.", ""),
    ("empty block with whitespace", "<think>\n\n</think>\n\nHi.", "Hi.", ""),
    ("never closes", "<think>Let me think about this", "", "Let me think about this"),
    ("never closes, partial close tag at the end", "<think>plan</thi", "", "plan</thi"),
    ("thinking spelling", "<thinking>plan</thinking>Answer.", "Answer.", "plan"),
    ("upper case", "<THINK>plan</THINK> Answer.", "Answer.", "plan"),
    ("mixed case", "<Think>plan</think>\tAnswer.", "Answer.", "plan"),
    ("closing tag must match the opening name", "<thinking>a</think>b</thinking>Answer.", "Answer.", "a</think>b"),
    ("looks like a tag", "<the table> is here.", "<the table> is here.", ""),
    ("other tag", "<b>bold</b>", "<b>bold</b>", ""),
    ("tag not at the start is text", "Use <think> and </think> tags.", "Use <think> and </think> tags.", ""),
    ("whitespace before the block", "\n  <think>x</think>y", "y", "x"),
    ("lone less-than", "<", "<", ""),
    ("tag prefix at the end of the stream", "<thin", "<thin", ""),
    ("only whitespace", "  \n", "  \n", ""),
    ("a second block is answer", "<think>a</think>b<think>c</think>", "b<think>c</think>", "a"),
    ("closing tag again in the answer", "<think>a</think>b</think>c", "b</think>c", "a"),
    ("non-ASCII", "<think>日本語で考える…</think>\n答えは「はい」です。🙂", "答えは「はい」です。🙂", "日本語で考える…"),
    ("non-ASCII next to a tag prefix", "<think>é</thïnk>ü</think>ö", "ö", "é</thïnk>ü"),
    ("whitespace-only answer", "<think>x</think>  \n ", "", "x"),
    ("answer keeps inner whitespace", "<think>x</think>\n\nA.\n\nB.", "A.\n\nB.", "x"),
    ("less-than inside thinking", "<think>a < b and c <= d</think>Yes.", "Yes.", "a < b and c <= d"),
];

fn run(pieces: &[String]) -> ThinkSplit {
    let mut splitter = ThinkSplitter::new();
    let mut total = ThinkSplit::default();
    for piece in pieces {
        let out = splitter.push(piece);
        total.answer.push_str(&out.answer);
        total.thinking.push_str(&out.thinking);
    }
    let out = splitter.finish();
    total.answer.push_str(&out.answer);
    total.thinking.push_str(&out.thinking);
    total
}

/// Independent check that every input char is accounted for: the input is
/// `ws open ws thinking close ws answer` (tags in any case) or exactly `answer`.
fn accounts_for(input: &str, split: &ThinkSplit) -> bool {
    if input == split.answer && split.thinking.is_empty() {
        return true;
    }
    let lower = input.to_ascii_lowercase();
    let rest = lower.trim_start();
    let offset = lower.len() - rest.len();
    for (open, close) in [("<think>", "</think>"), ("<thinking>", "</thinking>")] {
        if !rest.starts_with(open) {
            continue;
        }
        let after_open = &input[offset + open.len()..];
        let inner = after_open.trim_start();
        let Some(tail) = inner.strip_prefix(split.thinking.as_str()) else { continue };
        let closed = tail.len() >= close.len() && tail[..close.len()].eq_ignore_ascii_case(close);
        if !closed {
            return tail.is_empty() && split.answer.is_empty();
        }
        return tail[close.len()..].trim_start() == split.answer;
    }
    false
}

#[test]
fn table_whole_input() {
    for (name, input, answer, thinking) in CASES {
        let got = run(&[input.to_string()]);
        assert_eq!((got.answer.as_str(), got.thinking.as_str()), (*answer, *thinking), "case '{name}'");
        assert!(accounts_for(input, &got), "case '{name}': not every char accounted for: {got:?}");
    }
}

#[test]
fn table_every_split_point_and_one_char_pieces() {
    for (name, input, answer, thinking) in CASES {
        for pieces in all_two_piece_splits(input) {
            let got = run(&pieces);
            assert_eq!((got.answer.as_str(), got.thinking.as_str()), (*answer, *thinking), "case '{name}' split {pieces:?}");
        }
    }
}

#[test]
fn table_random_splits_account_for_every_char() {
    let mut rng = Rng::new(12);
    for (name, input, answer, thinking) in CASES {
        for round in 0..50 {
            let pieces = random_pieces(input, &mut rng, 1 + round % 9);
            let got = run(&pieces);
            assert_eq!((got.answer.as_str(), got.thinking.as_str()), (*answer, *thinking), "case '{name}' pieces {pieces:?}");
            assert!(accounts_for(input, &got), "case '{name}' pieces {pieces:?}: {got:?}");
        }
    }
}

#[test]
fn holds_back_only_a_possible_tag_prefix() {
    let mut s = ThinkSplitter::new();
    assert_eq!(s.push(" <thi"), ThinkSplit::default(), "a tag prefix at the start waits");
    assert_eq!(s.push("nk>Plan"), ThinkSplit { answer: String::new(), thinking: "Plan".into() });
    assert!(s.in_thinking());
    assert_eq!(s.push(" more <"), ThinkSplit { answer: String::new(), thinking: " more ".into() }, "only '<' is held");
    assert_eq!(s.push("b> x </th"), ThinkSplit { answer: String::new(), thinking: "<b> x ".into() });
    assert_eq!(s.push("ank>"), ThinkSplit { answer: String::new(), thinking: "</thank>".into() }, "'</th' + 'ank>' is not the close tag");
    assert_eq!(s.push("</think>\n"), ThinkSplit::default(), "whitespace after the block waits for the answer");
    assert!(!s.in_thinking());
    assert_eq!(s.push("\nHi"), ThinkSplit { answer: "Hi".into(), thinking: String::new() });
    assert_eq!(s.push(" <think>"), ThinkSplit { answer: " <think>".into(), thinking: String::new() }, "answer text is never held");
    assert_eq!(s.finish(), ThinkSplit::default());
}

#[test]
fn answer_without_block_streams_at_once() {
    let mut s = ThinkSplitter::new();
    assert_eq!(s.push("<th"), ThinkSplit::default());
    assert_eq!(s.push("e table"), ThinkSplit { answer: "<the table".into(), thinking: String::new() });
    assert_eq!(s.push("> x"), ThinkSplit { answer: "> x".into(), thinking: String::new() });
}
