//! API keys on a real `loupe serve`: who may send, who may query, and the refusal to listen in
//! the open without one.

use std::process::Command;

use serde_json::Value;

use crate::support::{LOUPE, ServerProcess, client, temp_data_dir};

const ADMIN: &str = "admin-key-0123456789";
const INGEST_API: &str = "ingest-api-0123456789";
const QUERY: &str = "query-key-0123456789";

fn config() -> String {
    format!(
        "[[keys]]\nname = \"api-writer\"\nkey = \"{INGEST_API}\"\nrole = \"ingest\"\ndatasets = [\"api\"]\n\
         [[keys]]\nname = \"analyst\"\nkey = \"{QUERY}\"\nrole = \"query\"\n"
    )
}

async fn send(
    server: &ServerProcess,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut req = client().post(server.url(path)).body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn bearer(key: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {key}"))
}

#[tokio::test]
async fn keys_decide_who_may_send_and_who_may_query() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start_with(&data, Some(&config()), &["--api-key", ADMIN]);
    let event = r#"{"k": 1}"#;
    let sql = "SELECT 1 AS one";

    let (s, body) = send(&server, "/v1/events/api", &[], event).await;
    assert_eq!(s, 401, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{body}"
    );
    let (s, _) = send(
        &server,
        "/v1/events/api",
        &[("authorization", "Bearer not-a-key-at-all!")],
        event,
    )
    .await;
    assert_eq!(s, 401);

    let (k, v) = bearer(INGEST_API);
    let (s, body) = send(&server, "/v1/events/api", &[(k, &v)], event).await;
    assert_eq!((s, body["accepted"].as_u64()), (200, Some(1)), "{body}");
    let (s, body) = send(&server, "/v1/events/web", &[(k, &v)], event).await;
    assert_eq!(s, 403, "a key limited to api may not write web");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only to datasets api"),
        "{body}"
    );
    let (s, _) = send(&server, "/api/v1/sql", &[(k, &v)], sql).await;
    assert_eq!(s, 403, "an ingest key may not query");
    // Honeycomb clients send the key in their own header.
    let (s, _) = send(
        &server,
        "/v1/events/api",
        &[("x-honeycomb-team", INGEST_API)],
        event,
    )
    .await;
    assert_eq!(s, 200);

    let (k, v) = bearer(QUERY);
    let (s, body) = send(&server, "/api/v1/sql", &[(k, &v)], sql).await;
    assert_eq!(
        (s, &body["rows"][0]["one"]),
        (200, &Value::from(1)),
        "{body}"
    );
    let (s, _) = send(&server, "/v1/events/api", &[(k, &v)], event).await;
    assert_eq!(s, 403, "a query key may not send");
    let (s, _) = send(&server, "/api/v1/sql", &[], sql).await;
    assert_eq!(s, 401);

    let (k, v) = bearer(ADMIN);
    assert_eq!(
        send(&server, "/v1/events/web", &[(k, &v)], event).await.0,
        200
    );
    assert_eq!(send(&server, "/api/v1/sql", &[(k, &v)], sql).await.0, 200);

    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "health checks need no key");
}

#[test]
fn no_key_on_an_open_address_is_refused_unless_insecure() {
    let (_tmp, data) = temp_data_dir();
    let out = Command::new(LOUPE)
        .args(["serve", "--http", "0.0.0.0:0", "--data-dir"])
        .arg(&data)
        .env_remove("LOUPE_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without an API key") && err.contains("--insecure"),
        "{err}"
    );

    // Told it is a trusted network, it starts.
    let server = ServerProcess::start_with(&data, None, &["--http", "0.0.0.0:0", "--insecure"]);
    drop(server);
    // With a key it starts too, and the key is then required.
    let _server =
        ServerProcess::start_with(&data, None, &["--http", "0.0.0.0:0", "--api-key", ADMIN]);
}

#[test]
fn bad_keys_stop_the_server_before_it_listens() {
    let (_tmp, data) = temp_data_dir();
    let path = data.with_extension("toml");
    std::fs::write(&path, "[[keys]]\nkey = \"short\"\nrole = \"ingest\"\n").unwrap();
    let out = Command::new(LOUPE)
        .arg("--config")
        .arg(&path)
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 16 characters"), "{err}");
}
