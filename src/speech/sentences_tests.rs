use super::*;
use crate::speech::test_util::{all_two_piece_splits, random_pieces, Rng};

/// Boundary rules alone (`min_sentence_chars` 1): (name, input, sentences).
const BOUNDARIES: &[(&str, &str, &[&str])] = &[
    ("issue example", "Dr. Smith measured 3.14 meters, e.g. at the lab. Then he left! Did he return? Yes, he did.",
        &["Dr. Smith measured 3.14 meters, e.g. at the lab.", "Then he left!", "Did he return?", "Yes, he did."]),
    ("plain terminators", "Hello there! How are you? I am fine.", &["Hello there!", "How are you?", "I am fine."]),
    ("decimal number", "Pi is 3.14 today. Yes.", &["Pi is 3.14 today.", "Yes."]),
    ("thousands and decimals", "It costs 1,000.5 dollars. Cheap.", &["It costs 1,000.5 dollars.", "Cheap."]),
    ("leading-dot decimal", "It rose .5 percent. Ok.", &["It rose .5 percent.", "Ok."]),
    ("version numbers", "Python 3.12.1 is out. Use version 2.0. It works.", &["Python 3.12.1 is out.", "Use version 2.0.", "It works."]),
    ("titles", "Mr. Brown met Mrs. Green and Ms. White. They talked.", &["Mr. Brown met Mrs. Green and Ms. White.", "They talked."]),
    ("title in brackets", "(Dr. Who) is a show. Prof. Plum agrees.", &["(Dr. Who) is a show.", "Prof. Plum agrees."]),
    ("saint", "We met at St. Mary's church. Nice.", &["We met at St. Mary's church.", "Nice."]),
    ("etc before uppercase", "Apples, pears, etc. Are all fruit. Yes.", &["Apples, pears, etc. Are all fruit.", "Yes."]),
    ("vs and approx", "Cats vs. Dogs weighs approx. Ten kilos. Heavy.", &["Cats vs. Dogs weighs approx. Ten kilos.", "Heavy."]),
    ("i.e. before uppercase", "That is, i.e. The answer is no. Ok.", &["That is, i.e. The answer is no.", "Ok."]),
    ("dotted abbreviations", "Ask the U.S. Navy. Or z.B. Das Amt. Fine.", &["Ask the U.S. Navy.", "Or z.B. Das Amt.", "Fine."]),
    ("unknown abbreviation before lowercase", "The Univ. of Foo is big. Ok.", &["The Univ. of Foo is big.", "Ok."]),
    ("initials", "J. R. R. Tolkien wrote books. He was British.", &["J. R. R. Tolkien wrote books.", "He was British."]),
    ("the pronoun I is no initial", "So did I. Then we left.", &["So did I.", "Then we left."]),
    ("numbered list", "Steps:\n1. Preheat the oven.\n2. Mix the flour.\n  10. Bake it.",
        &["Steps:", "1. Preheat the oven.", "2. Mix the flour.", "10. Bake it."]),
    ("lettered list", "a. First thing.\nb. Second thing.", &["a. First thing.", "b. Second thing."]),
    ("number ending a sentence", "I counted to 3. Then I stopped.", &["I counted to 3.", "Then I stopped."]),
    ("url with query", "Visit https://example.com/a.b?c=d for more. Thanks!", &["Visit https://example.com/a.b?c=d for more.", "Thanks!"]),
    ("url ending a sentence", "Go to https://example.com. Then log in.", &["Go to https://example.com.", "Then log in."]),
    ("e-mail", "Write to jane.doe@example.org today. She answers.", &["Write to jane.doe@example.org today.", "She answers."]),
    ("file names", "Edit config.yaml and main.rs. Done!", &["Edit config.yaml and main.rs.", "Done!"]),
    ("no space after a terminator", "Hi!Bob is here.", &["Hi!Bob is here."]),
    ("three-dot ellipsis", "Wait... What was that? I think... maybe not.", &["Wait...", "What was that?", "I think... maybe not."]),
    ("ellipsis char", "Well… Then we go. Well… then we stay.", &["Well…", "Then we go.", "Well… then we stay."]),
    ("closing quote", "He said \"Hi.\" Then he left.", &["He said \"Hi.\"", "Then he left."]),
    ("curly quote and bracket", "She wrote “Done!” (really.) Next one.", &["She wrote “Done!”", "(really.)", "Next one."]),
    ("CJK", "你好。我很好！你呢？", &["你好。", "我很好！", "你呢？"]),
    ("CJK closing bracket", "「はい。」そうです。", &["「はい。」", "そうです。"]),
    ("Arabic question mark", "كيف حالك؟ أنا بخير.", &["كيف حالك؟", "أنا بخير."]),
    ("Devanagari danda", "मैं ठीक हूँ। धन्यवाद।", &["मैं ठीक हूँ।", "धन्यवाद।"]),
    ("line breaks", "Title\nFirst line.\n\nSecond para\r\nThird", &["Title", "First line.", "Second para", "Third"]),
    ("markdown emphasis after the terminator", "**Note.** Then go. *Really!* Yes.", &["**Note.**", "Then go.", "*Really!*", "Yes."]),
    ("repeated terminators", "Wow!! Great?! Yes.", &["Wow!!", "Great?!", "Yes."]),
    ("no terminator at all", "just some words", &["just some words"]),
    ("whitespace only", " \n \n", &[]),
];

fn config(min: usize, max: usize) -> SentenceConfig {
    SentenceConfig { min_sentence_chars: min, max_sentence_chars: max }
}

fn run(config: SentenceConfig, pieces: &[String]) -> Vec<String> {
    run_counting(config, pieces).0
}

/// The sentences, and how many run-on cuts were forced before a boundary was decided.
fn run_counting(config: SentenceConfig, pieces: &[String]) -> (Vec<String>, usize) {
    let mut splitter = SentenceSplitter::new(config);
    let mut out: Vec<String> = pieces.iter().flat_map(|p| splitter.push(p)).collect();
    out.extend(splitter.finish());
    (out, splitter.forced_cuts)
}

/// The sentences are trimmed, non-empty, and appear in `input` in order, separated by whitespace
/// only; returns where each starts in `input`.
fn assert_covers(input: &str, sentences: &[String], max: usize, what: &str) -> Vec<usize> {
    let mut rest = input;
    let mut starts = Vec::new();
    for s in sentences {
        assert!(!s.is_empty() && s.trim() == s, "{what}: untrimmed or empty sentence {s:?}");
        rest = rest.trim_start();
        starts.push(input.len() - rest.len());
        rest = rest.strip_prefix(s.as_str()).unwrap_or_else(|| panic!("{what}: {s:?} is not next in {rest:?}"));
    }
    assert!(rest.trim().is_empty(), "{what}: text left over: {rest:?}");
    let collapse = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    // Joined with one space they equal the input up to whitespace, unless a hard cut split a
    // word longer than the limit, or CJK sentences (written without spaces) were separated.
    let no_hard_cut = input.split_whitespace().all(|w| w.chars().count() <= max);
    if no_hard_cut && !input.chars().any(is_cjk_terminator) {
        assert_eq!(collapse(&sentences.join(" ")), collapse(input), "{what}: join with one space");
    }
    for s in sentences {
        assert!(s.chars().count() <= max.max(1), "{what}: {s:?} longer than {max}");
    }
    starts
}

/// A sentence shorter than `min` (but the last) comes only from a run-on cut: joining it to the
/// next one's first word would have exceeded `max`.
fn assert_short_only_before_run_on(input: &str, sentences: &[String], starts: &[usize], (min, max): (usize, usize), what: &str) {
    for i in 0..sentences.len().saturating_sub(1) {
        if sentences[i].chars().count() < min {
            let first_word = sentences[i + 1].split_whitespace().next().unwrap_or("");
            let joined = &input[starts[i]..starts[i + 1] + first_word.len()];
            assert!(joined.chars().count() > max, "{what}: {:?} shorter than {min} and not last", sentences[i]);
        }
    }
}

#[test]
fn boundary_table_whole_input() {
    for (name, input, expected) in BOUNDARIES {
        let got = run(config(1, 200), &[input.to_string()]);
        assert_eq!(got, *expected, "case '{name}'");
        assert_covers(input, &got, 200, name);
    }
}

#[test]
fn boundary_table_every_split_point() {
    for (name, input, expected) in BOUNDARIES {
        for pieces in all_two_piece_splits(input) {
            assert_eq!(run(config(1, 200), &pieces), *expected, "case '{name}' split {pieces:?}");
        }
    }
}

#[test]
fn issue_example_gives_four_sentences_with_default_limits() {
    let input = BOUNDARIES[0].1;
    assert_eq!(run(SentenceConfig::default(), &[input.into()]).len(), 4);
}

/// (name, min, max, input, sentences)
const LIMITS: &[(&str, usize, usize, &str, &[&str])] = &[
    ("short sentences join the next", 10, 200, "Hi! I am a robot. Ok. Bye now, friend.", &["Hi! I am a robot.", "Ok. Bye now, friend."]),
    ("several short ones join", 10, 200, "Hi. Yo. Hey. Good morning!", &["Hi. Yo. Hey.", "Good morning!"]),
    ("the last short one is flushed", 10, 200, "This is long enough. Ok.", &["This is long enough.", "Ok."]),
    ("short CJK joins", 4, 200, "你好。我很好！", &["你好。我很好！"]),
    ("run-on cut at the last comma", 1, 30, "one two three four, five six seven eight nine ten.",
        &["one two three four,", "five six seven eight nine ten."]),
    ("run-on cut at the last space", 1, 20, "alpha beta gamma delta epsilon zeta", &["alpha beta gamma", "delta epsilon zeta"]),
    ("comma in the first half is not used", 1, 20, "ab, cdefgh ijklmnopq rstu", &["ab, cdefgh ijklmnopq", "rstu"]),
    ("run-on without spaces cut hard", 1, 5, "abcdefghijkl", &["abcde", "fghij", "kl"]),
    ("CJK run-on cut at a full-width comma", 1, 8, "一二三四五，六七八九十", &["一二三四五，", "六七八九十"]),
    ("emoji graphemes are not split", 1, 3, "👨‍👩‍👧👨‍👩‍👧", &["👨‍👩‍👧", "👨‍👩‍👧"]),
];

#[test]
fn limits_table_whole_and_split() {
    for (name, min, max, input, expected) in LIMITS {
        assert_eq!(run(config(*min, *max), &[input.to_string()]), *expected, "case '{name}'");
        for pieces in all_two_piece_splits(input) {
            assert_eq!(run(config(*min, *max), &pieces), *expected, "case '{name}' split {pieces:?}");
        }
    }
}

/// Each piece, and the sentences that must come out right after it (`min_sentence_chars` 1).
/// (piece, sentences expected right after it)
type Steps = &'static [(&'static str, &'static [&'static str])];

const TIMING: &[(&str, Steps)] = &[
    ("the word after ! proves the end", &[("Then he left!", &[]), (" ", &[]), ("Did", &["Then he left!"])]),
    ("the word after ?\" proves the end", &[("Why?", &[]), ("\" ", &[]), ("x", &["Why?\""])]),
    ("a comma after ! continues", &[("Wow!", &[]), (" ", &[]), (", yes", &[])]),
    ("a period waits for the next letter", &[("At the lab.", &[]), (" ", &[]), ("  ", &[]), ("T", &["At the lab."])]),
    ("a lowercase letter continues", &[("It is e.g.", &[]), (" ", &[]), ("a test", &[])]),
    ("an abbreviation continues", &[("Ask Dr.", &[]), (" S", &[]), ("mith now. ", &[]), ("Ok", &["Ask Dr. Smith now."])]),
    ("a line break proves the end", &[("Line one", &[]), ("\n", &["Line one"]), ("Line two", &[])]),
    ("CJK waits for one char", &[("你好。", &[]), ("我", &["你好。"])]),
    ("emphasis after a period", &[("**Note.", &[]), ("** ", &[]), ("Then", &["**Note.**"])]),
    ("ellipsis waits for the next letter", &[("Well…", &[]), (" ", &[]), ("T", &["Well…"])]),
];

#[test]
fn sentences_come_out_as_soon_as_their_end_is_proven() {
    for (name, steps) in TIMING {
        let mut splitter = SentenceSplitter::new(config(1, 200));
        for (piece, expected) in *steps {
            assert_eq!(splitter.push(piece), *expected, "case '{name}' after {piece:?}");
        }
    }
}

#[test]
fn finish_resets_for_the_next_answer() {
    let mut splitter = SentenceSplitter::new(config(1, 200));
    assert!(splitter.push("First answer").is_empty());
    assert_eq!(splitter.finish(), ["First answer"]);
    assert!(splitter.finish().is_empty());
    assert!(splitter.push("1. Listed item.").is_empty(), "a new answer starts at a line start");
    assert_eq!(splitter.finish(), ["1. Listed item."]);
}

const FRAGMENTS: &[&str] = &[
    "Hello", "world", "the", "robot", "Dr.", "Mr.", "e.g.", "i.e.", "etc.", "vs.", "approx.", "J.", "R.", "3.14",
    "1,000.5", "https://example.com/a.b?c=d", "jane@example.org", "config.yaml", ".", "!", "?", "…", "...", ",",
    "\"", "“", "”", ")", "(", "\n", "\n\n", "1.", "- ", "**", "`code`", "你好", "。", "！", "👍", "I", "Then",
    "was", "fine", "Über", "ça", "  ", "\t",
];

fn random_text(rng: &mut Rng) -> String {
    let n = 1 + rng.below(60);
    let mut text = String::new();
    for _ in 0..n {
        text.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
        if rng.below(3) > 0 {
            text.push(' ');
        }
    }
    text
}

#[test]
fn random_texts_and_splits_keep_every_word_in_order_within_limits() {
    let mut rng = Rng::new(13);
    let inputs: Vec<String> = BOUNDARIES.iter().map(|c| c.1.to_string()).chain((0..300).map(|_| random_text(&mut rng))).collect();
    let (mut runs, mut forced_runs) = (0, 0);
    for input in &inputs {
        for (min, max) in [(1, 200), (10, 200), (10, 40), (0, 12)] {
            let cfg = config(min, max);
            let what = format!("{input:?} min {min} max {max}");
            let (whole, whole_forced) = run_counting(cfg, std::slice::from_ref(input));
            let starts = assert_covers(input, &whole, max, &what);
            if whole_forced == 0 {
                assert_short_only_before_run_on(input, &whole, &starts, (min, max), &what);
            }
            for round in 0..8 {
                let pieces = random_pieces(input, &mut rng, 1 + round * 3);
                let (streamed, forced) = run_counting(cfg, &pieces);
                assert_covers(input, &streamed, max, &format!("{what} pieces {pieces:?}"));
                // Streaming gives the whole-text result unless a run-on cut had to come before
                // the text that decides a boundary (a period, then more than `max` chars
                // without a letter).
                if forced == 0 && whole_forced == 0 {
                    assert_eq!(streamed, whole, "{what} pieces {pieces:?}");
                } else if max >= 40 {
                    forced_runs += 1;
                }
                runs += usize::from(max >= 40);
            }
        }
    }
    println!("{forced_runs} of {runs} streamed runs with max >= 40 had a forced cut");
    assert!(forced_runs * 100 < runs, "{forced_runs} of {runs} streamed runs with max >= 40 had a forced cut");
}

#[test]
fn config_validation() {
    assert!(SentenceConfig::default().validate().is_ok());
    assert!(config(0, 0).validate().unwrap_err().contains("max_sentence_chars"));
    assert!(config(50, 50).validate().unwrap_err().contains("min_sentence_chars (50)"));
    // The splitter copes with invalid limits anyway.
    let out = run(config(50, 0), &["abc def. Ghi.".to_string()]);
    assert_covers("abc def. Ghi.", &out, 1, "invalid limits");
}

