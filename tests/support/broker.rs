//! Broker-mode helpers shared by the broker test binaries.

use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_auth::store::Store;
use oidc_auth::testing::MockProvider;
use oidc_auth::{ManualClock, OidcAuth, OidcConfigBuilder};
use serde_json::{Value, json};

use crate::{Framework, Harness, Reply, base_config, client_code_flow, flow_provider};

pub const BROKER_AUDIENCE: &str = "broker-api";
pub const TOKEN: &str = "/api/auth/v2/token";
pub const JWKS: &str = "/api/auth/v2/.well-known/jwks.json";
pub const REVOKE: &str = "/api/auth/v2/revoke";
/// SECURITY.md G6: with its database down or silent, the broker answers 503 within 5 s.
pub const G6_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A mock provider set up for broker tests: access tokens for `api`, no device pacing, and a
/// user with groups and roles.
pub async fn provider() -> MockProvider {
    let idp = flow_provider().await;
    idp.set_user(
        "alice",
        json!({"preferred_username": "alice", "email": "alice@example.com",
               "groups": ["admins"], "realm_access": {"roles": ["editor"]}}),
    );
    idp
}

/// The broker configuration of the tests: broker mode, audience `broker-api`, exchange client
/// `svc` / `svc-secret`.
pub fn broker_config(idp: &MockProvider) -> OidcConfigBuilder {
    base_config(idp)
        .client_id("test-client")
        .broker_mode(true)
        .broker_audience(BROKER_AUDIENCE)
        .exchange_client("svc", "svc-secret")
}

/// Serves a broker on `store` with both frameworks.
pub async fn serve_broker(
    idp: MockProvider,
    store: Arc<dyn Store>,
    adjust: impl FnOnce(OidcConfigBuilder) -> OidcConfigBuilder,
    clock: Option<ManualClock>,
) -> Harness {
    let config = adjust(broker_config(&idp))
        .build()
        .expect("broker configuration");
    let mut builder = OidcAuth::builder(config).store(store);
    if let Some(clock) = &clock {
        builder = builder.clock(clock.clone());
    }
    Harness::serve(idp, builder.build(), clock).await
}

pub fn decode(segment: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(segment).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// Header and claims of a compact JWT.
pub fn jwt(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = decode(parts.next().unwrap_or_default());
    let claims = decode(parts.next().unwrap_or_default());
    (header, claims)
}

pub fn field<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply.body[name].as_str().unwrap_or_default()
}

pub async fn login(h: &Harness, fw: Framework) -> Reply {
    let reply = client_code_flow(h, fw).await;
    assert_eq!(reply.status, 200, "{}", reply.raw_body);
    reply
}

pub async fn refresh(h: &Harness, fw: Framework, token: &str) -> Reply {
    h.post_form(fw, TOKEN, &[("refresh-token", token)]).await
}

/// A token-exchange form for `subject` (an access token) with `extra` fields.
pub fn exchange_form<'a>(
    subject: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", subject),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
    ];
    form.extend_from_slice(extra);
    form
}

/// POSTs a token-exchange `form`, authenticated as the exchange client `svc` with `secret`
/// (HTTP Basic) when one is given.
pub async fn exchange_as(
    h: &Harness,
    fw: Framework,
    form: &[(&str, &str)],
    secret: Option<&str>,
) -> Reply {
    let mut request = h.client().post(h.url(fw, TOKEN)).form(form);
    if let Some(secret) = secret {
        request = request.basic_auth("svc", Some(secret));
    }
    crate::into_reply(request.send().await.expect("answer")).await
}

/// [`exchange_as`] with the right secret when `authenticated`, none otherwise.
pub async fn exchange(
    h: &Harness,
    fw: Framework,
    form: &[(&str, &str)],
    authenticated: bool,
) -> Reply {
    exchange_as(h, fw, form, authenticated.then_some("svc-secret")).await
}

/// `bytes` in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `prefix` with a random suffix: a schema or database name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    format!("{prefix}_{}", hex(&bytes))
}

/// Runs a database tool and returns its standard output; panics with its standard error when
/// it fails.
pub fn run(command: &mut Command) -> Vec<u8> {
    let output = command.output().expect("the database tool runs");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Creates a fresh schema (named from `prefix`) in the PostgreSQL database at `url` with
/// `psql`; returns its name and a store URL whose search path is that schema.
pub fn postgres_schema(url: &str, prefix: &str) -> (String, String) {
    let schema = unique(prefix);
    run(Command::new("psql").args([
        url,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        &format!("CREATE SCHEMA {schema}"),
    ]));
    let separator = if url.contains('?') { '&' } else { '?' };
    let store_url = format!("{url}{separator}options=-csearch_path%3D{schema}");
    (schema, store_url)
}

/// Drops `schema` and everything in it from the PostgreSQL database at `url`.
pub fn drop_postgres_schema(url: &str, schema: &str) {
    run(Command::new("psql").args([url, "-c", &format!("DROP SCHEMA {schema} CASCADE")]));
}

/// A MariaDB/MySQL client `tool` (`mysql`, `mysqldump`) connected over TCP to the server of the
/// `mysql://` `url`: its host (default `127.0.0.1`), port (default 3306), user (default `root`)
/// and password (passed as `MYSQL_PWD`).
pub fn mysql_command(url: &url::Url, tool: &str) -> Command {
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(3306).to_string();
    let user = if url.username().is_empty() {
        "root"
    } else {
        url.username()
    };
    let mut command = Command::new(tool);
    command.args(["-h", host, "-P", &port, "-u", user, "--protocol=tcp"]);
    if let Some(password) = url.password() {
        command.env("MYSQL_PWD", password);
    }
    command
}

/// A SQL backend for one test: its store URL; dropping it drops the schema or database it was
/// given.
pub struct Backend {
    /// `sqlite`, `postgres` or `mysql`.
    pub name: &'static str,
    /// The store URL.
    pub url: String,
    drop: Option<Box<dyn FnOnce()>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(cleanup) = self.drop.take() {
            cleanup();
        }
    }
}

/// `n` concurrent refreshes of `token`, alternating the frameworks: each answer's status and
/// whether it carried `Retry-After`.
/// The encryption key of [`issued_refresh_token`].
pub const ISSUING_KEY: &str = "aXNzdWluZy1rZXktaXNzdWluZy1rZXktaXNzdWluZyE=";

/// A refresh token as a broker with encryption key [`ISSUING_KEY`] issues it, from a login on
/// an instance of its own: another instance with that key takes it as made by this server and
/// looks it up in its own store (where it is unknown), while a made-up token is refused
/// without any store call.
pub async fn issued_refresh_token(idp: &MockProvider) -> String {
    let issuing = serve_broker(
        idp.clone(),
        Arc::new(oidc_auth::store::memory::MemoryStore::new()),
        |c| c.encryption_key(ISSUING_KEY),
        None,
    )
    .await;
    let reply = login(&issuing, Framework::Axum).await;
    field(&reply, "refresh_token").to_owned()
}

pub async fn concurrent_refreshes(h: &Harness, n: usize, token: &str) -> Vec<(u16, bool)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (client, url) = (h.client().clone(), h.url(crate::FRAMEWORKS[i % 2], TOKEN));
            let token = token.to_owned();
            tokio::spawn(async move {
                let reply = client
                    .post(url)
                    .form(&[("refresh-token", token)])
                    .send()
                    .await
                    .expect("an answer");
                (
                    reply.status().as_u16(),
                    reply.headers().contains_key("retry-after"),
                )
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.expect("the request task"));
    }
    answers
}

/// A fresh PostgreSQL schema and a fresh MariaDB database when their variables are set, and
/// SQLite in memory first when `sqlite` is true.
pub fn sql_backends(sqlite: bool) -> Vec<Backend> {
    let mut out = Vec::new();
    if sqlite {
        out.push(Backend {
            name: "sqlite",
            url: "sqlite::memory:".to_owned(),
            drop: None,
        });
    }
    match std::env::var("OIDC_AUTH_TEST_POSTGRES_URL") {
        Ok(url) => {
            let (schema, store_url) = postgres_schema(&url, "oidc_db");
            out.push(Backend {
                name: "postgres",
                url: store_url,
                drop: Some(Box::new(move || drop_postgres_schema(&url, &schema))),
            });
        }
        Err(_) => println!("postgres skipped: OIDC_AUTH_TEST_POSTGRES_URL not set"),
    }
    match std::env::var("OIDC_AUTH_TEST_MYSQL_URL") {
        Ok(url) => {
            let parsed = url::Url::parse(&url).expect("a mysql:// URL");
            let server = parsed.clone();
            let mysql = move |sql: String| {
                run(mysql_command(&server, "mysql").args(["-e", &sql]));
            };
            let database = unique("oidc_db");
            mysql(format!("CREATE DATABASE {database}"));
            let mut store_url = parsed.clone();
            store_url.set_path(&format!("/{database}"));
            out.push(Backend {
                name: "mysql",
                url: store_url.to_string(),
                drop: Some(Box::new(move || {
                    mysql(format!("DROP DATABASE {database}"));
                })),
            });
        }
        Err(_) => println!("mysql skipped: OIDC_AUTH_TEST_MYSQL_URL not set"),
    }
    out
}
