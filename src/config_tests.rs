//! Unit tests of the parameter table and its validation into `Config`.

use super::params::Value as V;
use super::*;

#[test]
fn defaults_are_valid_and_every_row_has_a_field() {
    let p = Params::with_defaults();
    let c = Config::from_params(&p).expect("defaults validate");
    assert_eq!(c.options, None);
    assert_eq!(c.format, None);
    assert!(c.max_concurrent_requests >= 1);
    for spec in PARAMS {
        assert!(p.get(spec.name).is_some(), "{}", spec.name);
        assert!(!spec.description().is_empty(), "{}", spec.name);
    }
}

#[test]
fn options_must_be_an_object() {
    assert_eq!(parse_options("{\"seed\": 1}").unwrap().unwrap()["seed"], 1);
    assert_eq!(parse_options("  ").unwrap(), None);
    assert_eq!(parse_options("[1]").unwrap_err().name, "options_json");
    assert!(parse_options("{seed: 1").unwrap_err().message.contains("not valid JSON"));
}

#[test]
fn bad_values_are_named() {
    let mut p = Params::with_defaults();
    p.request_timeout_s = 0.0;
    assert_eq!(Config::from_params(&p).unwrap_err().name, "request_timeout_s");
    let mut p = Params::with_defaults();
    p.format = "yaml".into();
    assert_eq!(Config::from_params(&p).unwrap_err().name, "format");
    let mut p = Params::with_defaults();
    p.model = " ".into();
    assert_eq!(Config::from_params(&p).unwrap_err().name, "model");
    let mut p = Params::with_defaults();
    p.max_concurrent_requests = 0;
    assert_eq!(Config::from_params(&p).unwrap_err().name, "max_concurrent_requests");
}

#[test]
fn set_converts_numbers_as_users_write_them() {
    let mut p = Params::with_defaults();
    p.set("request_timeout_s", V::Int(120)).unwrap();
    assert_eq!(p.request_timeout_s, 120.0);
    p.set("keep_alive", V::Int(-1)).unwrap();
    assert_eq!(p.keep_alive, "-1");
    p.set("keep_alive", V::Float(300.0)).unwrap();
    assert_eq!(p.keep_alive, "300");
    p.set("keep_alive", V::Text("10m".into())).unwrap();
    assert_eq!(p.keep_alive, "10m");
    p.set("max_retries", V::Float(3.0)).unwrap();
    assert_eq!(p.max_retries, 3);
    assert!(p.set("max_retries", V::Float(3.5)).unwrap_err().message.contains("expected an integer"));
    assert!(p.set("think", V::Int(1)).unwrap_err().message.contains("expected true or false"));
    assert!(p.set("model", V::Int(3)).is_err());
    assert!(p.set("no_such", V::Int(3)).unwrap_err().message.contains("no such parameter"));
}

#[test]
fn set_enforces_the_ranges_it_declares() {
    let mut p = Params::with_defaults();
    let err = p.set("max_retries", V::Int(-1)).unwrap_err();
    assert_eq!(err.message, "-1 is out of range: allowed 0 to 100");
    assert!(p.set("request_timeout_s", V::Int(0)).is_err());
    assert!(p.set("session_ttl_s", V::Int(0)).is_ok());
    assert!(p.set("max_concurrent_requests", V::Int(1025)).is_err());
    assert_eq!(p.max_retries, 2, "a refused value leaves the old one");
}

#[test]
fn the_url_password_is_never_shown_and_never_replaced_by_its_mark() {
    let mut p = Params::with_defaults();
    p.set("ollama_url", V::Text("http://robot:s3cret@10.0.0.5:8080/ollama".into())).unwrap();
    let shown = p.exposed("ollama_url").unwrap();
    assert_eq!(shown, V::Text("http://robot:***@10.0.0.5:8080/ollama".into()));
    // writing back what was read keeps the real password
    p.set("ollama_url", shown).unwrap();
    assert_eq!(p.ollama_url, "http://robot:s3cret@10.0.0.5:8080/ollama");
    // the mark with another host or user is not a password
    assert!(p.set("ollama_url", V::Text("http://robot:***@evil:8080".into())).is_err());
    assert!(p.set("ollama_url", V::Text("http://admin:***@10.0.0.5:8080/ollama".into())).is_err());
    assert_eq!(p.ollama_url, "http://robot:s3cret@10.0.0.5:8080/ollama");
    // a new real password is taken
    p.set("ollama_url", V::Text("http://robot:n3w@10.0.0.5:8080".into())).unwrap();
    assert_eq!(Config::from_params(&p).unwrap().ollama_url, "http://robot:n3w@10.0.0.5:8080");
    // a token as the user name is hidden whole (`***@`): written back, it is kept too
    p.set("ollama_url", V::Text("http://tok3n@10.0.0.5:8080".into())).unwrap();
    p.set("ollama_url", p.exposed("ollama_url").unwrap()).unwrap();
    assert_eq!(p.ollama_url, "http://tok3n@10.0.0.5:8080");
    assert!(p.set("ollama_url", V::Text("http://***@evil:8080".into())).is_err());
}

#[test]
fn redaction_keeps_everything_but_the_password() {
    assert_eq!(redact_url("http://u:p@h:1"), "http://u:***@h:1");
    assert_eq!(redact_url("https://u:p:q@h/x?y=z"), "https://u:***@h/x?y=z");
    assert_eq!(redact_url("http://token@h"), "http://***@h", "a user name alone may be a token");
    assert_eq!(redact_url(""), "");
}

#[test]
fn camera_and_tool_parameters_are_checked() {
    let c = Config::from_params(&Params::with_defaults()).unwrap();
    assert_eq!((c.attach_image, c.image_max_side, c.max_tool_rounds, c.tools_file.clone()), (AttachImage::OnRequest, 672, 4, None));
    assert_eq!(c.image_max_age, Duration::from_secs(2));
    let bad = |f: fn(&mut Params)| {
        let mut p = Params::with_defaults();
        f(&mut p);
        Config::from_params(&p).unwrap_err()
    };
    assert_eq!(bad(|p| p.attach_image = "sometimes".into()).name, "attach_image");
    assert!(bad(|p| p.attach_image = "always".into()).message.contains("needs image_topic or compressed_image_topic"));
    assert_eq!(bad(|p| p.image_max_side = 16).message, "16 is out of range: allowed 32 to 8192");
    assert_eq!(bad(|p| p.max_tool_rounds = 0).name, "max_tool_rounds");
    assert_eq!(bad(|p| p.image_max_age_s = 0.0).name, "image_max_age_s");
    let mut p = Params::with_defaults();
    (p.attach_image, p.compressed_image_topic) = ("always".into(), "/cam/compressed".into());
    assert_eq!(Config::from_params(&p).unwrap().attach_image, AttachImage::Always);
}

#[test]
fn min_sentence_chars_must_stay_below_max_sentence_chars() {
    let mut p = Params::with_defaults();
    (p.min_sentence_chars, p.max_sentence_chars) = (40, 40);
    let e = Config::from_params(&p).unwrap_err();
    assert_eq!(e.name, "min_sentence_chars");
    assert!(e.message.contains("must be smaller than max_sentence_chars"), "{}", e.message);
    p.min_sentence_chars = 39;
    assert_eq!(Config::from_params(&p).unwrap().min_sentence_chars, 39);
}
