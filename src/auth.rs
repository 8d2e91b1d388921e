//! API keys: who may send events, and who may query.
//!
//! A key is presented as `Authorization: Bearer <key>` or, for Honeycomb clients and Refinery,
//! `X-Honeycomb-Team: <key>`. Each key has a role (`ingest`, `query` or `all`); an ingest key may
//! be limited to some datasets. With no key configured, every request is let in, and `loupe
//! serve` then refuses to listen on anything but loopback unless told `--insecure`.
//!
//! ```toml
//! [[keys]]
//! name = "checkout-service"
//! key_env = "LOUPE_CHECKOUT_KEY"   # or: key = "..." (at least 16 characters)
//! role = "ingest"
//! datasets = ["checkout"]
//! ```

use std::sync::Arc;

use anyhow::bail;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

/// Shortest key accepted: guessable keys are worse than none, because they look like protection.
const MIN_KEY_LEN: usize = 16;
const HONEYCOMB_KEY_HEADER: &str = "x-honeycomb-team";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    Ingest,
    Query,
    All,
}

/// One `[[keys]]` entry of `loupe.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyConfig {
    /// A label for messages; never the key itself.
    name: Option<String>,
    key: Option<String>,
    /// Read the key from this environment variable instead of the file.
    key_env: Option<String>,
    role: Role,
    /// Datasets an ingest key may write; all when absent.
    datasets: Option<Vec<String>>,
}

struct Key {
    name: String,
    secret: Vec<u8>,
    role: Role,
    datasets: Option<Vec<String>>,
}

/// The configured keys. Empty means open.
#[derive(Clone, Default)]
pub(crate) struct Keys {
    keys: Arc<Vec<Key>>,
}

impl Keys {
    /// Keys from the config file plus `--api-key` (role `all`). Every problem is reported at once.
    pub(crate) fn new(
        configured: &[KeyConfig],
        cli_key: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Keys> {
        let mut keys = Vec::new();
        let mut problems = Vec::new();
        if let Some(k) = cli_key {
            keys.push(Key {
                name: "--api-key".into(),
                secret: k.as_bytes().to_vec(),
                role: Role::All,
                datasets: None,
            });
        }
        for (i, c) in configured.iter().enumerate() {
            let name = c.name.clone().unwrap_or_else(|| format!("keys[{i}]"));
            let secret = match (&c.key, &c.key_env) {
                (Some(k), None) => Some(k.clone()),
                (None, Some(var)) => {
                    let v = env(var);
                    if v.is_none() {
                        problems.push(format!("{name}: environment variable {var} is not set"));
                    }
                    v
                }
                _ => {
                    problems.push(format!("{name}: set exactly one of key and key_env"));
                    None
                }
            };
            if c.datasets.is_some() && c.role != Role::Ingest {
                problems.push(format!(
                    "{name}: datasets limits an ingest key; a query key can read every table through SQL"
                ));
            }
            if let Some(ds) = &c.datasets {
                for d in ds {
                    if let Err(e) = loupe_store::DatasetName::new(d) {
                        problems.push(format!("{name}: datasets: {e}"));
                    }
                }
            }
            if let Some(secret) = secret {
                keys.push(Key {
                    name,
                    secret: secret.into_bytes(),
                    role: c.role,
                    datasets: c.datasets.clone(),
                });
            }
        }
        for k in &keys {
            if k.secret.len() < MIN_KEY_LEN {
                problems.push(format!(
                    "{}: a key must be at least {MIN_KEY_LEN} characters",
                    k.name
                ));
            }
        }
        if !problems.is_empty() {
            bail!("invalid keys:\n  {}", problems.join("\n  "));
        }
        Ok(Keys {
            keys: Arc::new(keys),
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `presented` is a key that may query (role `query` or `all`): the PostgreSQL
    /// door's password check.
    pub(crate) fn may_query(&self, presented: &str) -> bool {
        self.find(presented.as_bytes())
            .is_some_and(|k| matches!(k.role, Role::Query | Role::All))
    }

    /// The key matching `presented`. Every configured key is compared in full, in constant
    /// time, so the answer's timing says nothing about how much of a key was right.
    fn find(&self, presented: &[u8]) -> Option<&Key> {
        let mut found = None;
        for k in self.keys.iter() {
            if constant_time_eq(&k.secret, presented) {
                found = Some(k);
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.as_bytes();
        let scheme = b"bearer ";
        if v.len() > scheme.len() && v[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(v[scheme.len()..].trim_ascii());
        }
    }
    headers
        .get(HONEYCOMB_KEY_HEADER)
        .map(|v| v.as_bytes().trim_ascii())
}

/// Why a request was turned away: 401 (no or unknown key) or 403 (a key without the right).
struct Refusal {
    status: StatusCode,
    msg: String,
}

fn refuse(status: StatusCode, msg: String) -> Refusal {
    Refusal { status, msg }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(json!({ "error": self.msg }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Checks the key of a request to `needed`'s routes; `dataset` is the `{dataset}` path
/// parameter, if the route has one.
fn check(
    keys: &Keys,
    headers: &HeaderMap,
    needed: Role,
    dataset: Option<&str>,
) -> Result<(), Refusal> {
    if keys.is_empty() {
        return Ok(());
    }
    let Some(p) = presented(headers) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "missing API key: send Authorization: Bearer <key> (or X-Honeycomb-Team: <key>)".into(),
        ));
    };
    let Some(key) = keys.find(p) else {
        return Err(refuse(StatusCode::UNAUTHORIZED, "unknown API key".into()));
    };
    if key.role != Role::All && key.role != needed {
        let what = match needed {
            Role::Ingest => "send events",
            _ => "query",
        };
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("key {} may not {what}", key.name),
        ));
    }
    if let Some(allowed) = &key.datasets {
        // Honeycomb dataset slugs are case-insensitive (its doors lowercase them).
        let ok = dataset.is_some_and(|d| allowed.iter().any(|a| a.eq_ignore_ascii_case(d)));
        if !ok {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "key {} may send only to datasets {}",
                    key.name,
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Middleware for ingest routes (apply with `Router::route_layer`, so the path is matched).
pub(crate) async fn require_ingest(
    State(keys): State<Keys>,
    params: RawPathParams,
    req: Request,
    next: Next,
) -> Response {
    let dataset = params.iter().find(|(k, _)| *k == "dataset").map(|(_, v)| v);
    match check(&keys, req.headers(), Role::Ingest, dataset) {
        Ok(()) => next.run(req).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Middleware for query routes.
pub(crate) async fn require_query(State(keys): State<Keys>, req: Request, next: Next) -> Response {
    match check(&keys, req.headers(), Role::Query, None) {
        Ok(()) => next.run(req).await,
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml_text: &str) -> Vec<KeyConfig> {
        #[derive(Deserialize)]
        struct F {
            keys: Vec<KeyConfig>,
        }
        toml::from_str::<F>(toml_text).unwrap().keys
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    const INGEST: &str = "ingest-key-0123456789";
    const QUERY: &str = "query-key-0123456789";

    fn keys() -> Keys {
        let c = cfg(&format!(
            "[[keys]]\nname = \"svc\"\nkey = \"{INGEST}\"\nrole = \"ingest\"\ndatasets = [\"api\"]\n\
             [[keys]]\nkey_env = \"Q\"\nrole = \"query\"\n"
        ));
        Keys::new(&c, None, |v| (v == "Q").then(|| QUERY.to_owned())).unwrap()
    }

    fn status(r: Result<(), Refusal>) -> u16 {
        r.map_or_else(|refusal| refusal.status.as_u16(), |()| 200)
    }

    #[test]
    fn roles_datasets_and_both_headers() {
        let k = keys();
        let bearer = headers("authorization", &format!("Bearer {INGEST}"));
        assert_eq!(status(check(&k, &bearer, Role::Ingest, Some("api"))), 200);
        assert_eq!(status(check(&k, &bearer, Role::Ingest, Some("web"))), 403);
        assert_eq!(status(check(&k, &bearer, Role::Ingest, None)), 403);
        assert_eq!(status(check(&k, &bearer, Role::Query, None)), 403);
        let team = headers("x-honeycomb-team", INGEST);
        assert_eq!(status(check(&k, &team, Role::Ingest, Some("api"))), 200);
        let q = headers("authorization", &format!("bearer {QUERY}"));
        assert_eq!(status(check(&k, &q, Role::Query, None)), 200);
        assert_eq!(status(check(&k, &q, Role::Ingest, Some("api"))), 403);
        assert_eq!(status(check(&k, &HeaderMap::new(), Role::Query, None)), 401);
        let wrong = headers("authorization", &format!("Bearer {QUERY}x"));
        assert_eq!(status(check(&k, &wrong, Role::Query, None)), 401);
    }

    #[test]
    fn no_keys_means_open() {
        assert_eq!(
            status(check(
                &Keys::default(),
                &HeaderMap::new(),
                Role::Ingest,
                None
            )),
            200
        );
    }

    #[test]
    fn bad_key_settings_are_all_reported() {
        let c = cfg("[[keys]]\nkey = \"short\"\nrole = \"all\"\n\
             [[keys]]\nname = \"q\"\nkey_env = \"MISSING\"\nrole = \"query\"\ndatasets = [\"api\"]\n\
             [[keys]]\nname = \"both\"\nkey = \"0123456789abcdef\"\nkey_env = \"X\"\nrole = \"ingest\"\n\
             [[keys]]\nname = \"d\"\nkey = \"0123456789abcdef\"\nrole = \"ingest\"\ndatasets = [\"../x\"]\n");
        let e = Keys::new(&c, None, |_| None).err().unwrap().to_string();
        for needle in [
            "keys[0]: a key must be at least 16",
            "q: environment variable MISSING",
            "q: datasets limits an ingest key",
            "both: set exactly one of key and key_env",
            "d: datasets:",
        ] {
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
        assert!(
            !e.contains("0123456789abcdef"),
            "messages never show a key: {e}"
        );
    }
}
