use super::*;

/// (name, input, speakable)
const CASES: &[(&str, &str, &str)] = &[
    ("plain text is unchanged", "Hello! How can I help?", "Hello! How can I help?"),
    ("bold and italic", "This is **very** *important* and __so__ _is_ this.", "This is very important and so is this."),
    ("strikethrough", "It costs ~~ten~~ five euros.", "It costs ten five euros."),
    ("heading", "## Step one: preparation", "Step one: preparation"),
    ("bullets", "- apples\n* pears\n+ plums", "apples pears plums"),
    ("numbered list", "1. Preheat the oven.\n2. Mix the flour.", "Preheat the oven. Mix the flour."),
    ("numbered list item alone", "10. Bake it.", "Bake it."),
    ("a year starting a line is kept", "1999. It was a good year.", "1999. It was a good year."),
    ("blockquote", "> To be or not to be.", "To be or not to be."),
    ("link keeps its text", "See [the docs](https://example.com/docs) for more.", "See the docs for more."),
    ("image goes", "Here: ![a diagram](diagram.png) done.", "Here: done."),
    ("inline code keeps its text", "Run `ls -l` in the shell.", "Run ls -l in the shell."),
    ("fenced code block goes", "Try this:\n```python\nprint('hi')\n```\nThen run it.", "Try this: Then run it."),
    ("tilde fence", "Code:\n~~~\nx = 1\n~~~\nDone.", "Code: Done."),
    ("triple backticks inline is code, not a fence", "Use ```x``` here.", "Use x here."),
    ("table", "| Name | Age |\n|------|----:|\n| Ann | 31 |", "Name, Age Ann, 31"),
    ("thematic break and setext underline", "Title\n=====\nText.\n\n---\n\nMore.", "Title Text. More."),
    ("task list", "- [ ] buy milk\n- [x] feed cat", "buy milk feed cat"),
    ("html tags", "Line one<br>line <b>two</b>.", "Line one line two."),
    ("entities", "Salt &amp; pepper.", "Salt & pepper."),
    ("stray emphasis from a sentence cut", "**Note: this matters", "Note: this matters"),
    ("stray closing emphasis", "and that is all.**", "and that is all."),
    ("snake_case stays", "Set max_sentence_chars to 200.", "Set max_sentence_chars to 200."),
    ("multiplication stays", "Compute 5 * 3 please.", "Compute 5 * 3 please."),
    ("emoji", "Great job 🎉! See you 👋", "Great job! See you"),
    ("emoji ZWJ sequence and skin tone", "Family: 👨‍👩‍👧 and 👍🏽 ok.", "Family: and ok."),
    ("flag and keycap", "Made in 🇩🇪, step 1️⃣ first.", "Made in, step first."),
    ("text-style emoji symbols", "Done ✔ and ❤️ it ™.", "Done and it."),
    ("ASCII digits, # and * stay", "Item #3 costs 4*2 euros.", "Item #3 costs 4*2 euros."),
    ("Indic ZWJ stays", "क्‍ष है।", "क्‍ष है।"),
    ("CJK and accents stay", "你好，世界。Ça va? Überall.", "你好，世界。Ça va? Überall."),
    ("whitespace collapses", "  many   spaces\n\nand\tlines  ", "many spaces and lines"),
    ("leading-dot number keeps its space", "It rose .5 percent.", "It rose .5 percent."),
    ("only markup", "```\n```", ""),
    ("only emoji", "🎉🎉", ""),
    ("empty", "", ""),
];

#[test]
fn table() {
    for (name, input, expected) in CASES {
        assert_eq!(speakable(input), *expected, "case '{name}'");
    }
}

#[test]
fn code_block_spanning_sentences_is_dropped_across_calls() {
    let mut filter = SpeakableFilter::new();
    let sentences = ["Here is code:", "```rust", "let x = 1; // not spoken.", "x + 1", "```", "That was it."];
    let spoken: Vec<String> = sentences.iter().map(|s| filter.filter(s)).collect();
    assert_eq!(spoken, ["Here is code:", "", "", "", "", "That was it."]);
}

#[test]
fn a_fence_needs_its_own_kind_and_length_to_close() {
    let mut filter = SpeakableFilter::new();
    assert_eq!(filter.filter("````\ncode"), "");
    assert_eq!(filter.filter("```"), "", "a shorter fence does not close");
    assert_eq!(filter.filter("~~~~"), "", "another fence char does not close");
    assert_eq!(filter.filter("````\nSpoken again."), "Spoken again.");
}

#[test]
fn joined_short_sentences_with_markdown() {
    // What the sentence splitter gives when short lines join the next one.
    assert_eq!(speakable("# Title\nSome text here."), "Title Some text here.");
    assert_eq!(speakable("```\nls -l\n```\nThen it lists files."), "Then it lists files.");
}
