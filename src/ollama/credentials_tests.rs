//! Kind 2 (credentials in the server URL), client part: the user info is sent as HTTP Basic
//! auth and never appears in a request line, an error text, a `Debug` output or the base URL.

use std::time::Duration;

use serde_json::json;

use super::client_tests::hello;
use super::fake_server::{chunk, json_reply, ndjson_head, reply, FakeServer, Step};
use super::{Client, ClientConfig, OllamaError};

const PASSWORD: &str = "s3cr3t-pw";

/// A client for the fake server at `url` (`http://127.0.0.1:port`) with `userinfo@` added.
fn client_with(url: &str, userinfo: &str, api_key: Option<&str>) -> Client {
    let with_userinfo = url.replacen("http://", &format!("http://{userinfo}@"), 1);
    Client::new(ClientConfig {
        base_url: with_userinfo,
        connect_timeout: Duration::from_millis(500),
        load_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        api_key: api_key.map(Into::into),
        ..ClientConfig::default()
    })
    .expect("client")
}

/// Every text a user could see of `err` is free of the password, and names the user.
fn assert_clean(what: &str, err: &OllamaError) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(
            !text.contains(PASSWORD) && !text.contains("czNjcjN0LXB3"),
            "{what}: {text}"
        );
    }
}

#[tokio::test]
async fn user_info_is_sent_as_basic_auth_and_stripped_from_the_request() {
    let mut server = FakeServer::start(vec![vec![json_reply(
        200,
        "OK",
        &json!({"version": "0.12.3"}),
    )]])
    .await;
    let c = client_with(&server.url, &format!("robot:{PASSWORD}"), None);
    assert_eq!(c.version().await.unwrap(), "0.12.3");
    let req = server.request().await;
    // base64("robot:s3cr3t-pw")
    assert_eq!(
        req.header("authorization"),
        Some("Basic cm9ib3Q6czNjcjN0LXB3")
    );
    assert_eq!(req.path, "/api/version");
    assert!(!req.header("host").unwrap_or_default().contains('@'));
    assert_eq!(
        c.base_url(),
        server.url.replacen("http://", "http://robot:***@", 1)
    );
    assert!(!format!("{c:?}").contains(PASSWORD));
}

#[tokio::test]
async fn user_info_is_percent_decoded_and_wins_over_the_api_key() {
    let mut server =
        FakeServer::start(vec![vec![json_reply(200, "OK", &json!({"version": "1"}))]]).await;
    let c = client_with(&server.url, "ro%62ot:p%40ss%3Aw%2Frd", Some("sk-key"));
    c.version().await.unwrap();
    // base64("robot:p@ss:w/rd"); no Bearer: one Authorization header, the URL's.
    assert_eq!(
        server.request().await.header("authorization"),
        Some("Basic cm9ib3Q6cEBzczp3L3Jk")
    );
}

#[tokio::test]
async fn ollama_host_form_with_user_info_works() {
    let mut server =
        FakeServer::start(vec![vec![json_reply(200, "OK", &json!({"version": "1"}))]]).await;
    let host = server.url.replacen("http://", "robot:pw@", 1);
    let base_url = ClientConfig::from_env_host(&host);
    assert_eq!(
        base_url,
        server.url.replacen("http://", "http://robot:pw@", 1)
    );
    let c = Client::new(ClientConfig {
        base_url,
        ..ClientConfig::default()
    })
    .unwrap();
    c.version().await.unwrap();
    assert_eq!(
        server.request().await.header("authorization"),
        Some("Basic cm9ib3Q6cHc=")
    );
}

#[tokio::test]
async fn no_error_text_shows_the_password() {
    let userinfo = format!("robot:{PASSWORD}");
    let echo =
        format!("bad credentials robot:{PASSWORD} (Authorization: Basic cm9ib3Q6czNjcjN0LXB3)");
    let scripts = vec![
        (
            "401 echoing the credentials",
            vec![json_reply(401, "Unauthorized", &json!({ "error": echo }))],
        ),
        (
            "404 page",
            vec![reply(
                404,
                "Not Found",
                "text/plain",
                &format!("404 page not found {PASSWORD}"),
            )],
        ),
        (
            "502 html",
            vec![reply(
                502,
                "Bad Gateway",
                "text/html",
                &format!("<h1>502</h1>{echo}"),
            )],
        ),
        (
            "stall before headers",
            vec![Step::Pause(Duration::from_secs(2))],
        ),
        (
            "stall mid-answer",
            vec![
                ndjson_head(),
                chunk(b"{\"message\":{\"content\":\"a\"}}\n"),
                Step::Pause(Duration::from_secs(2)),
            ],
        ),
        ("cut before any answer", vec![]),
        (
            "cut mid-answer",
            vec![ndjson_head(), chunk(b"{\"message\":{\"content\":\"a\"}}\n")],
        ),
        (
            "error line echoing",
            vec![
                ndjson_head(),
                chunk(format!("{{\"error\":\"{echo}\"}}\n").as_bytes()),
            ],
        ),
        (
            "garbage line echoing",
            vec![ndjson_head(), chunk(format!("<p>{echo}</p>\n").as_bytes())],
        ),
    ];
    for (what, script) in scripts {
        // Every failure also gets one re-send (cut before any answer): give it the same script.
        let server = FakeServer::start(vec![script.clone(), script]).await;
        let c = client_with(&server.url, &userinfo, None);
        let err = match c.chat_stream(&hello()).await {
            Err(e) => e,
            Ok(mut stream) => loop {
                match stream.next_chunk().await {
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break e,
                    None => panic!("{what}: no error"),
                }
            },
        };
        assert_clean(what, &err);
        assert!(
            err.to_string().contains("robot:***@") || !err.to_string().contains("127.0.0.1"),
            "{what}: {err}"
        );
    }
    // Nothing listening: connection refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = client_with(&url, &userinfo, None)
        .show("llama3.2")
        .await
        .unwrap_err();
    assert!(matches!(err, OllamaError::Connect { .. }), "{err:?}");
    assert_clean("connection refused", &err);
    assert!(err.to_string().contains("robot:***@127.0.0.1"), "{err}");
    // An unusable URL.
    let err = Client::new(ClientConfig {
        base_url: format!("ftp://robot:{PASSWORD}@host"),
        ..ClientConfig::default()
    })
    .unwrap_err();
    assert_clean("bad URL", &err);
}

#[tokio::test]
async fn a_token_as_user_name_is_hidden_like_a_password() {
    // `http://TOKEN@host`: redact_url shows `***@`, so no error text may show the token either.
    let token = "tok3n-0123";
    let echo = format!("bad token {token} (Basic dG9rM24tMDEyMzo=)");
    let server = FakeServer::start(vec![vec![json_reply(
        401,
        "Unauthorized",
        &json!({ "error": echo }),
    )]])
    .await;
    let c = client_with(&server.url, token, None);
    let err = c.show("llama3.2").await.unwrap_err();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(token) && !text.contains("dG9rM24tMDEyMzo="), "{text}");
    }
    assert!(err.to_string().contains("bad token <redacted>"), "{err}");
}
