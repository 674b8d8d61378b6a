//! Unit tests of the context budget: estimates, window sources, reply reserve, which exchanges fit
//! (system prompt kept, trimming in blocks, an input too long), and the token accounting.

use super::*;
use crate::config::Params;
use crate::ollama::ClientConfig;

fn config(edit: impl FnOnce(&mut Params)) -> Config {
    let mut params = Params::with_defaults();
    edit(&mut params);
    Config::from_params(&params).expect("valid params")
}

fn window(tokens: u32) -> Window {
    Window { tokens, source: WindowSource::Param }
}

/// An exchange of `user` + `assistant` counted tokens.
fn counted(user: u32, assistant: u32) -> Turn {
    Turn::new("u", "a").with_tokens(Some(user), Some(assistant))
}

#[test]
fn estimates_count_bytes_and_the_template() {
    assert_eq!(estimate_tokens(""), TEMPLATE_TOKENS_PER_MESSAGE);
    assert_eq!(estimate_tokens(&"abcd".repeat(10)), 10 + TEMPLATE_TOKENS_PER_MESSAGE);
    assert_eq!(estimate_tokens("abcde"), 2 + TEMPLATE_TOKENS_PER_MESSAGE, "rounded up");
    assert_eq!(estimate_tokens("日本語"), 3 + TEMPLATE_TOKENS_PER_MESSAGE, "9 bytes: more than chars / 4");
    let t = Turn::new("x".repeat(40), "y".repeat(80));
    assert_eq!(turn_tokens(&t), 14 + 24, "never counted: both estimated");
    assert_eq!(turn_tokens(&t.clone().with_tokens(Some(7), None)), 7 + 24, "each side falls back on its own");
    assert_eq!(turn_tokens(&t.with_tokens(Some(7), Some(9))), 16);
}

#[test]
fn the_window_comes_from_context_tokens_then_num_ctx_then_the_server() {
    let both = config(|p| {
        p.context_tokens = 1000;
        p.options_json = r#"{"num_ctx": 2048}"#.into();
    });
    assert_eq!(configured_window(&both), Some(window(1000)));
    let num_ctx = config(|p| p.options_json = r#"{"num_ctx": 2048}"#.into());
    assert_eq!(configured_window(&num_ctx), Some(Window { tokens: 2048, source: WindowSource::NumCtx }));
    assert!(configured_window(&num_ctx).unwrap().to_string().contains("num_ctx in options_json"));
    let float = config(|p| p.options_json = r#"{"num_ctx": 3000.0}"#.into());
    assert_eq!(configured_window(&float).map(|w| w.tokens), Some(3000));
    for ignored in [r#"{"num_ctx": 0}"#, r#"{"num_ctx": -5}"#, r#"{"num_ctx": "big"}"#, r#"{"num_ctx": 1.5}"#, "{}"] {
        assert_eq!(configured_window(&config(|p| p.options_json = ignored.into())), None, "{ignored}");
    }
    // the server's: the trained length capped at Ollama's default context
    let big = server_window("llama3.2", Some(131072));
    assert_eq!(big.tokens, OLLAMA_DEFAULT_NUM_CTX);
    assert!(big.to_string().contains("supports 131072") && big.to_string().contains("context_tokens"), "{big}");
    assert_eq!(server_window("tiny", Some(2048)).tokens, 2048);
    assert_eq!(server_window("odd", Some(0)).tokens, OLLAMA_DEFAULT_NUM_CTX);
    assert_eq!(server_window("none", None).tokens, OLLAMA_DEFAULT_NUM_CTX);
    assert!(window(900).to_string().contains("(context_tokens)"));
}

#[tokio::test]
async fn a_configured_window_needs_no_server_and_a_failed_lookup_assumes_the_default() {
    // nothing listens on port 1: a lookup fails at once
    let client = Client::new(ClientConfig { base_url: "http://127.0.0.1:1".into(), ..ClientConfig::from_env() }).unwrap();
    let windows = ContextWindows::new();
    let set = config(|p| p.context_tokens = 777);
    assert_eq!(windows.window(&client, &set).await, window(777));
    let auto = config(|p| p.ollama_url = "http://127.0.0.1:1".into());
    let assumed = windows.window(&client, &auto).await;
    assert_eq!(assumed, server_window("llama3.2", None));
}

#[tokio::test]
async fn each_server_of_a_fleet_has_its_own_window_for_a_model() {
    use crate::ollama::fake_server::{json_reply, FakeServer};
    let show = |n: u64| json_reply(200, "OK", &serde_json::json!({"model_info": {"general.architecture": "llama", "llama.context_length": n}}));
    // one lookup each: a second one would find no answer (and assume the default)
    let (small, large) = (FakeServer::start(vec![vec![show(300)]]).await, FakeServer::start(vec![vec![show(2000)]]).await);
    let client = |url: &str| Client::new(ClientConfig { base_url: url.into(), ..ClientConfig::from_env() }).unwrap();
    let (a, b) = (client(&small.url), client(&large.url));
    let both = config(|p| p.ollama_url = format!("{},{}", small.url, large.url));
    let windows = ContextWindows::new();
    assert_eq!(windows.window(&a, &both).await, server_window("llama3.2", Some(300)));
    assert_eq!(windows.window(&b, &both).await, server_window("llama3.2", Some(2000)), "not the first server's");
    assert_eq!(windows.window(&a, &both).await.tokens, 300, "kept per server");
    assert_eq!(windows.window(&b, &both).await.tokens, 2000, "kept per server");
}

#[test]
fn the_reply_reserve_is_num_predict_else_the_parameter() {
    assert_eq!(reply_reserve(&config(|_| {})), 512);
    assert_eq!(reply_reserve(&config(|p| p.reply_reserve_tokens = 100)), 100);
    assert_eq!(reply_reserve(&config(|p| p.options_json = r#"{"num_predict": 64}"#.into())), 64);
    for unlimited in [-1, -2, 0] {
        let c = config(|p| p.options_json = format!(r#"{{"num_predict": {unlimited}}}"#));
        assert_eq!(reply_reserve(&c), 512, "num_predict {unlimited} reserves nothing itself");
    }
}

#[test]
fn everything_is_sent_when_it_fits() {
    let history = vec![counted(10, 20); 5];
    let fit = fit(window(1000), 100, "be brief", &history, "hello").unwrap();
    assert_eq!(fit.dropped, 0);
    assert_eq!(fit.history_tokens, 150);
    assert_eq!(fit.system_tokens, estimate_tokens("be brief"));
    assert_eq!(fit.input_tokens, estimate_tokens("hello"));
    let no_system = super::fit(window(1000), 100, "  ", &history, "hello").unwrap();
    assert_eq!(no_system.system_tokens, 0, "an empty system prompt takes nothing");
}

#[test]
fn the_system_prompt_is_kept_and_old_exchanges_go_in_a_block() {
    let system = "s".repeat(400); // ~104 tokens
    let history = vec![counted(20, 30); 12]; // 600 tokens
    let w = window(700);
    let fit = fit(w.clone(), 100, &system, &history, "hi").unwrap();
    let room = 700 - fit.system_tokens - fit.input_tokens - 100;
    assert!(fit.dropped > 0 && fit.system_tokens > 0, "the system prompt stays, exchanges go");
    assert!(fit.history_tokens <= room / 2, "down to half the room: {} > {}", fit.history_tokens, room / 2);
    assert_eq!(fit.history_tokens, 50 * (12 - fit.dropped) as u32);
    assert!(fit.history_tokens + 50 > room / 2, "no more than needed for half the room");
}

#[test]
fn after_a_block_trim_the_next_requests_extend_the_prompt() {
    // a long conversation in a small window: how often does the prompt's start change?
    let system = "You are a robot.";
    let (mut history, mut trims, requests) = (Vec::new(), 0, 60);
    for _ in 0..requests {
        let fit = fit(window(600), 64, system, &history, "tell me more").unwrap();
        if fit.dropped > 0 {
            trims += 1;
            history.drain(..fit.dropped);
        }
        history.push(counted(12, 40));
    }
    assert!(trims >= 2, "the window was filled more than once ({trims} trims)");
    assert!(trims * 4 <= requests, "{trims} of {requests} requests changed the prompt's start");
}

#[test]
fn the_newest_exchange_is_kept_when_it_alone_fits() {
    let history = vec![counted(10, 10), counted(100, 150)];
    let fit = fit(window(320), 50, "", &history, "hi").unwrap();
    assert_eq!(fit.dropped, 1, "250 tokens are more than half the room, but they fit");
    let fit = super::fit(window(300), 50, "", &history, "hi").unwrap();
    assert_eq!(fit.dropped, 2, "and are left out when they do not fit at all");
}

#[test]
fn an_input_that_cannot_fit_alone_is_refused_with_the_numbers() {
    let input = "word ".repeat(400); // 2000 bytes: ~504 tokens
    let err = fit(window(600), 128, "be brief", &[counted(5, 5)], &input).unwrap_err();
    for part in ["~504", "128", "600-token context window (context_tokens)", "reply_reserve_tokens", "context_tokens"] {
        assert!(err.contains(part), "{part:?} not in {err:?}");
    }
    assert!(fit(window(700), 128, "be brief", &[], &input).is_ok(), "it fits a larger window");
}

/// The user turn's tokens as a server would report them, for a conversation whose real token
/// sizes differ from the estimates.
#[test]
fn ollama_counts_make_the_history_add_up_to_the_server_s_prompt() {
    let system = "You are a careful robot. ".repeat(4); // estimated ~29, counted 45 below
    let real_system = 45u32;
    let mut history: Vec<Turn> = Vec::new();
    let mut real_context = real_system; // what the server holds after each exchange
    for (i, (real_user, real_answer)) in [(17u32, 30u32), (9, 44), (25, 12), (11, 60)].into_iter().enumerate() {
        let fit = fit(window(4096), 64, &system, &history, &format!("question {i}")).unwrap();
        // Ollama reports the whole prompt: system + every exchange + the new user turn
        let p = real_context + real_user;
        history.push(fit.counted_turn("q", "a", p, real_answer, false));
        real_context = p + real_answer;
        let accounted = fit.system_tokens + history.iter().map(turn_tokens).sum::<u32>();
        assert_eq!(accounted, real_context, "turn {i}: system + history = what the server holds");
        if i > 0 {
            assert_eq!(history[i].user_tokens, Some(real_user), "turn {i}: the prompt's growth, exactly");
        }
        assert_eq!(history[i].assistant_tokens, Some(real_answer));
    }
}

#[test]
fn evaluated_only_counts_are_read_as_cache_hits() {
    // llama.cpp's server: P counts only what it evaluated after the cached prefix
    let system = "You are a robot.";
    let history = vec![counted(30, 40); 4];
    let fit = fit(window(4096), 64, system, &history, "what now?").unwrap();
    let user = 9; // the new turn's real size, near its estimate
    let known = fit.system_tokens + fit.history_tokens;
    assert_eq!(fit.user_tokens(user), Some(user), "extending the previous prompt: only the new turn evaluated");
    assert_eq!(fit.user_tokens(known - fit.system_tokens + user), Some(user), "after a trim: the system prompt cached");
    assert_eq!(fit.user_tokens(known + user), Some(user), "nothing cached (Ollama)");
    assert_eq!(fit.user_tokens(0), None, "not reported");
    // a small count that Ollama's reading cannot explain and no cache reading makes plausible
    let odd = fit.user_tokens(1).unwrap();
    assert_eq!(odd, fit.input_tokens, "falls back on the estimate");
}

#[test]
fn thinking_answers_and_missing_counts_stay_estimates() {
    let fit = fit(window(4096), 64, "", &[], "hi").unwrap();
    let plain = fit.counted_turn("hi", "hello", 12, 5, false);
    assert_eq!((plain.user_tokens, plain.assistant_tokens), (Some(12), Some(5)));
    let thought = fit.counted_turn("hi", "hello", 12, 250, true);
    assert_eq!(thought.assistant_tokens, None, "eval_count includes the thinking the history does not keep");
    let silent = fit.counted_turn("hi", "hello", 0, 0, false);
    assert_eq!((silent.user_tokens, silent.assistant_tokens), (None, None));
}

#[test]
fn token_parameters_are_validated() {
    let defaults = config(|_| {});
    assert_eq!((defaults.context_tokens, defaults.reply_reserve_tokens), (0, 512));
    let bad = |edit: fn(&mut Params)| {
        let mut p = Params::with_defaults();
        edit(&mut p);
        Config::from_params(&p).unwrap_err()
    };
    assert_eq!(bad(|p| p.context_tokens = -1).name, "context_tokens");
    assert_eq!(bad(|p| p.reply_reserve_tokens = -1).name, "reply_reserve_tokens");
    assert_eq!(bad(|p| p.context_tokens = 1 << 40).name, "context_tokens");
    assert_eq!(config(|p| p.reply_reserve_tokens = 0).reply_reserve_tokens, 0);
}
