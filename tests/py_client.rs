//! The real Python client, py-oidc-auth-client (PyPI 2603.0.1, pinned with its dependencies in
//! tests/py-client/requirements.txt), against both frameworks and the mock provider: the device
//! flow, the fallback to the browser flow when the device route answers 503, the refresh of an
//! expired access token, refresh tokens the server refuses, and broker mode's own tokens.
//!
//! Each case runs `tests/py-client/drive.py` (see its docstring) in the venv
//! `tests/py-client/.venv`, which calls the client's public API and prints one JSON result: the
//! token the client returned, or its `AuthError`; the status of a protected route called with the
//! `headers` the client returned; and every exchange the client made with the server (method,
//! path, form field names, status, top-level `error`). Without the venv the cases print that they
//! were skipped, unless `CI` is set: then they fail, since CI must run them. Install with
//! `python3 -m venv tests/py-client/.venv && tests/py-client/.venv/bin/pip install -r
//! tests/py-client/requirements.txt`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use oidc_auth::store::memory::MemoryStore;
use oidc_auth::testing::{Endpoint, Fault, MockProvider};
use oidc_auth::{Clock, SystemClock};
use oidc_auth_tests::{
    AUDIENCE, FRAMEWORKS, Framework, Harness, LOOPBACK, broker, browser_login, client_token_call,
};
use serde_json::{Value, json};
use tokio::process::Command;

/// The longest a driver run may take; a device flow takes about 5 s, the others well under 1 s.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(90);
/// The `sub` of the mock provider's default user.
const USER: &str = "alice";
/// The routes of the test application the client is pointed at.
const AUTH_PREFIX: &str = "/api";
const TOKEN_PATH: &str = "/api/auth/v2/token";
const DEVICE_PATH: &str = "/api/auth/v2/device";
const PROTECTED: &str = "/me";
const SKIP_MESSAGE: &str = "skipped: py-oidc-auth-client is not installed; run python3 -m venv \
     tests/py-client/.venv && tests/py-client/.venv/bin/pip install -r \
     tests/py-client/requirements.txt";

/// The directory of the driver, its requirements and its venv.
fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py-client")
}

/// The venv's Python; `None` (the test is skipped, with a message) when the venv is missing,
/// unless `CI` is set: then it panics, as `real_provider::skip_or_panic` does.
fn python() -> Option<PathBuf> {
    let venv = client_dir().join(".venv");
    let python = if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    };
    if python.is_file() {
        return Some(python);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "the py-oidc-auth-client tests must run in CI: {} is missing",
            python.display()
        );
    }
    eprintln!("{SKIP_MESSAGE}");
    None
}

/// Both frameworks against a mock provider whose access tokens are for our audience; `device`
/// switches the provider's device endpoint (off: our device route answers 503).
///
/// The provider's device interval is 0, not 1. The client (2603.0.1) polls once right after the
/// device start, and after a `slow_down` it adds 5 s to its interval but still sleeps the old
/// one, so against a provider that enforces the grown interval, as the mock does (RFC 8628
/// section 3.5), every later poll is early again: with 1 s the mock answered `slow_down` to the
/// polls at 0.1, 1.4, 7.4 and 18.3 s, and the client gave up at its 30 s timeout. With 0 the
/// mock never slows the client down; our server tells the client 5 s (it never passes on a
/// non-positive interval), so the flow takes one interval.
async fn harness(device: bool) -> Harness {
    let idp = MockProvider::start().await.expect("mock provider starts");
    idp.set_access_token_audience(AUDIENCE);
    idp.set_device_interval(Some(0));
    idp.set_device_enabled(device);
    Harness::with(idp, |b| b.client_id("test-client"), None).await
}

/// The driver's arguments that point the client at `fw`: the server URL its auth routes are
/// under (the client adds `/auth/v2/...`) and the protected route to call with its token.
fn target(h: &Harness, fw: Framework) -> Vec<String> {
    vec![
        "--host".into(),
        h.url(fw, AUTH_PREFIX),
        "--protected".into(),
        h.url(fw, PROTECTED),
    ]
}

/// Runs `drive.py` with `args` under `python`, bounded by [`DRIVER_TIMEOUT`], with no proxy
/// settings (only loopback is used); returns its JSON result. Panics, with the driver's stderr,
/// when it times out, fails, or prints no JSON.
async fn drive(python: &Path, args: &[String]) -> Value {
    let mut command = Command::new(python);
    command
        .arg(client_dir().join("drive.py"))
        .args(args)
        .current_dir(client_dir())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        command.env_remove(var).env_remove(var.to_lowercase());
    }
    let child = command.spawn().expect("the venv's python starts");
    let output = tokio::time::timeout(DRIVER_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("drive.py {args:?} did not finish in {DRIVER_TIMEOUT:?}"))
        .expect("drive.py runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "drive.py {args:?} failed ({}):\n{stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("drive.py printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// Runs the `login` scenario while acting as the user of the device flow: once the provider has
/// handed out a new device authorization and the client's first poll has reached the provider
/// (so that the client sees `authorization_pending` at least once), the user code is approved.
async fn drive_device_login(h: &Harness, python: &Path, fw: Framework) -> Value {
    let before = h.idp.last_device_code();
    let polls = h.idp.hits(Endpoint::Token);
    let mut args = vec!["login".to_owned()];
    args.extend(target(h, fw));
    let run = drive(python, &args);
    tokio::pin!(run);
    let mut approved = false;
    loop {
        tokio::select! {
            result = &mut run => {
                assert!(approved, "{fw:?}: the device was never approved: {result}");
                return result;
            }
            () = tokio::time::sleep(Duration::from_millis(20)), if !approved => {
                let started = h
                    .idp
                    .last_device_code()
                    .filter(|c| Some(c) != before.as_ref());
                if let Some((_, user_code)) = started
                    && h.idp.hits(Endpoint::Token) > polls
                {
                    approved = h.idp.approve_device(&user_code);
                }
            }
        }
    }
}

/// Runs the `login` scenario with `seeded` (a Token JSON) already in the client's store, its
/// access token marked expired, so the client starts with a refresh.
async fn drive_seeded_login(h: &Harness, python: &Path, fw: Framework, seeded: &Value) -> Value {
    let mut args = vec!["login".to_owned(), format!("--seed-token={seeded}")];
    args.extend(target(h, fw));
    drive(python, &args).await
}

/// [`assert_working_token`], and the access token is a new one, not `seeded`'s.
fn assert_new_working_token(result: &Value, fw: Framework, seeded: &Value) {
    let access = assert_working_token(result, fw);
    assert_ne!(
        Some(access.as_str()),
        seeded["access_token"].as_str(),
        "{fw:?}: the client kept the old access token"
    );
}

/// The server's token answer for a login done as the client does it (browser flow requests,
/// sent from here): the token the refresh cases store in the client.
async fn server_token(h: &Harness, fw: Framework) -> Value {
    let (_, callback) = browser_login(h, fw, LOOPBACK).await;
    let reply = client_token_call(h, fw, &callback).await;
    assert_eq!(reply.status, 200, "{}", reply.raw_body);
    reply.body
}

/// One HTTP exchange of the client with the server, as the driver recorded it.
#[derive(Debug)]
struct Exchange {
    method: String,
    path: String,
    form: Vec<String>,
    status: u64,
    error: Option<String>,
}

/// The exchanges of a driver result.
fn exchanges(result: &Value) -> Vec<Exchange> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    result["exchanges"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| Exchange {
                    method: text(&e["method"]).unwrap_or_default(),
                    path: text(&e["path"]).unwrap_or_default(),
                    form: e["form"]
                        .as_array()
                        .map(|f| f.iter().filter_map(text).collect())
                        .unwrap_or_default(),
                    status: e["status"].as_u64().unwrap_or(0),
                    error: text(&e["error"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The exchanges as `(path, status)` pairs, for whole-sequence assertions.
fn path_status(result: &Value) -> Vec<(String, u64)> {
    exchanges(result)
        .into_iter()
        .map(|e| (e.path, e.status))
        .collect()
}

/// Asserts the client succeeded with a token it built from our answer (absolute expiry times in
/// the future, `headers` made of the token type and access token), stored it, and that the
/// protected route accepted those `headers` for the mock's user. Returns the access token.
fn assert_working_token(result: &Value, fw: Framework) -> String {
    assert_eq!(result["ok"], true, "{fw:?}: the client failed: {result}");
    let token = &result["token"];
    let access = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token_type = token["token_type"].as_str().unwrap_or_default();
    assert!(!access.is_empty(), "{fw:?}: {token}");
    assert!(token_type.eq_ignore_ascii_case("bearer"), "{fw:?}: {token}");
    assert_eq!(
        token["headers"]["Authorization"].as_str(),
        Some(format!("{token_type} {access}").as_str()),
        "{fw:?}"
    );
    assert!(
        !token["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{fw:?}: {token}"
    );
    let now = SystemClock.now();
    let expires = token["expires"].as_i64().unwrap_or(0);
    assert!(
        expires > now && expires < now + 3600,
        "{fw:?}: expires {expires}"
    );
    assert!(
        token["refresh_expires"].as_i64().unwrap_or(0) > now,
        "{fw:?}: {token}"
    );
    assert_eq!(result["stored"], true, "{fw:?}: the client kept no token");
    assert_eq!(
        (
            result["protected"]["status"].as_u64(),
            result["protected"]["body"]["sub"].as_str()
        ),
        (Some(200), Some(USER)),
        "{fw:?}: {result}"
    );
    access
}

/// The device flow as the client runs it on its own: `POST /device` (200, with an `interval`),
/// polls of `/token` with only the hyphenated `device-code` field, each refusal carrying
/// `authorization_pending` at top level, until the user's approval at the provider gives a
/// token; no browser flow; the token's `headers` open a protected route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_flow_logs_the_client_in() {
    let Some(python) = python() else { return };
    let h = harness(true).await;
    for fw in FRAMEWORKS {
        let devices = h.idp.hits(Endpoint::Device);
        let result = drive_device_login(&h, &python, fw).await;
        assert_working_token(&result, fw);
        let all = exchanges(&result);
        let (start, polls) = all.split_first().expect("the client made requests");
        assert_eq!(
            (start.method.as_str(), start.path.as_str(), start.status),
            ("POST", DEVICE_PATH, 200),
            "{fw:?}: {all:?}"
        );
        // The provider states 0: the server passes on RFC 8628's default instead.
        assert_eq!(
            result["exchanges"][0]["interval"].as_i64(),
            Some(5),
            "{fw:?}: {all:?}"
        );
        let (last, pending) = polls.split_last().expect("the client polled");
        assert_eq!(
            (last.path.as_str(), last.status),
            (TOKEN_PATH, 200),
            "{fw:?}: {all:?}"
        );
        assert!(
            !pending.is_empty(),
            "{fw:?}: approved before the first poll: {all:?}"
        );
        for poll in polls {
            assert_eq!(poll.path, TOKEN_PATH, "{fw:?}: {all:?}");
            assert_eq!(poll.form, ["device-code"], "{fw:?}: {all:?}");
        }
        for refusal in pending {
            assert_eq!(
                (refusal.status, refusal.error.as_deref()),
                (400, Some("authorization_pending")),
                "{fw:?}: {all:?}"
            );
        }
        // The client opens the verification URL for the user; no login URL.
        let opened = result["browser"].as_array().cloned().unwrap_or_default();
        assert_eq!(opened.len(), 1, "{fw:?}: {opened:?}");
        assert!(
            opened[0]["url"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&h.idp.issuer()),
            "{fw:?}: {opened:?}"
        );
        assert_eq!(h.idp.hits(Endpoint::Device), devices + 1, "{fw:?}");
    }
    assert_eq!(h.idp.hits(Endpoint::Authorize), 0);
}

/// The browser flow the client falls back to when the device route answers 503: its login URL,
/// opened in a stand-in browser, goes through our `/login` (302) and the provider's `/authorize`
/// (302) to the client's own loopback listener (200); the client then sends `code`,
/// `redirect_uri`, `grant_type` and the text after the last `|` of `state` as `code_verifier`,
/// and our `/token` answers a token whose `headers` open a protected route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_flow_after_a_503_from_the_device_route() {
    let Some(python) = python() else { return };
    let h = harness(false).await;
    browser_login_after_a_device_503(&h, &python).await;
    assert_eq!(
        h.idp.hits(Endpoint::Device),
        0,
        "a 503 without asking the provider"
    );
}

/// The same fallback when the provider lists a device endpoint but refuses the device flow to
/// this client (`unauthorized_client`, as Keycloak answers for a client without the grant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_flow_when_the_provider_refuses_the_device_flow_to_this_client() {
    let Some(python) = python() else { return };
    let h = harness(true).await;
    h.idp.set_fault(
        Endpoint::Device,
        Fault::Json(400, json!({"error": "unauthorized_client"})),
    );
    browser_login_after_a_device_503(&h, &python).await;
    assert_eq!(
        h.idp.hits(Endpoint::Device),
        FRAMEWORKS.len(),
        "the provider was asked once per login"
    );
}

/// The client's `login` on both frameworks, whose device route answers 503: it falls back to
/// the browser flow, which completes.
async fn browser_login_after_a_device_503(h: &Harness, python: &Path) {
    for fw in FRAMEWORKS {
        let (authorizes, tokens) = (h.idp.hits(Endpoint::Authorize), h.idp.hits(Endpoint::Token));
        let mut args = vec!["login".to_owned()];
        args.extend(target(h, fw));
        let result = drive(python, &args).await;
        assert_working_token(&result, fw);
        assert_eq!(
            path_status(&result),
            [(DEVICE_PATH.to_owned(), 503), (TOKEN_PATH.to_owned(), 200)],
            "{fw:?}: {result}"
        );
        let token_call = &exchanges(&result)[1];
        assert_eq!(
            token_call.form,
            ["code", "redirect_uri", "grant_type", "code_verifier"],
            "{fw:?}"
        );
        let opened = result["browser"].as_array().cloned().unwrap_or_default();
        assert_eq!(opened.len(), 1, "{fw:?}: {opened:?}");
        assert_eq!(
            opened[0]["url"].as_str(),
            Some(h.url(fw, "/api/auth/v2/login").as_str()),
            "{fw:?}"
        );
        let hops = opened[0]["hops"].as_array().cloned().unwrap_or_default();
        let statuses: Vec<u64> = hops.iter().filter_map(|s| s["status"].as_u64()).collect();
        assert_eq!(statuses, [302, 302, 200], "{fw:?}: {hops:?}");
        assert_eq!(
            hops[1]["url"].as_str(),
            Some(h.idp.endpoint_url(Endpoint::Authorize).as_str()),
            "{fw:?}"
        );
        let listener = hops[2]["url"].as_str().unwrap_or_default();
        assert!(
            listener.starts_with("http://localhost:") && listener.ends_with("/callback"),
            "{fw:?}: {listener}"
        );
        let query = hops[2]["query"].as_array().cloned().unwrap_or_default();
        assert!(
            query.contains(&Value::from("code")) && query.contains(&Value::from("state")),
            "{fw:?}: {query:?}"
        );
        assert_eq!(h.idp.hits(Endpoint::Authorize), authorizes + 1, "{fw:?}");
        assert_eq!(h.idp.hits(Endpoint::Token), tokens + 1, "{fw:?}");
    }
}

/// A stored token whose access token has expired and whose refresh token is valid: the client
/// sends one `refresh-token` form to our `/token`, which refreshes at the provider; the new
/// access token differs from the old one and opens a protected route. No interactive login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed() {
    let Some(python) = python() else { return };
    let h = harness(true).await;
    for fw in FRAMEWORKS {
        let seeded = server_token(&h, fw).await;
        let refreshes = h.idp.refresh_count();
        let devices = h.idp.hits(Endpoint::Device);
        let result = drive_seeded_login(&h, &python, fw, &seeded).await;
        assert_new_working_token(&result, fw, &seeded);
        let all = exchanges(&result);
        assert_eq!(all.len(), 1, "{fw:?}: {all:?}");
        assert_eq!(
            (all[0].path.as_str(), all[0].form.as_slice(), all[0].status),
            (TOKEN_PATH, ["refresh-token".to_owned()].as_slice(), 200),
            "{fw:?}"
        );
        assert_eq!(h.idp.refresh_count(), refreshes + 1, "{fw:?}");
        assert_eq!(h.idp.hits(Endpoint::Device), devices, "{fw:?}");
        assert_eq!(result["browser"], serde_json::json!([]), "{fw:?}");
    }
}

/// A refresh token the server refuses, unknown or revoked at the provider: the client reports an
/// `AuthError` with status 400 and `invalid_grant` at top level of its detail, keeps no token,
/// and the server goes on serving (a fresh token still opens a protected route).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_is_a_client_error() {
    let Some(python) = python() else { return };
    let h = harness(true).await;
    for fw in FRAMEWORKS {
        let revoked = server_token(&h, fw).await["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        h.idp.revoke_refresh_tokens();
        for refresh in ["not-a-refresh-token", revoked.as_str()] {
            let refreshes = h.idp.refresh_count();
            // One argument with `=`: a token may begin with `-`, which argparse would take for
            // an option of its own.
            let mut args = vec!["refresh".to_owned(), format!("--refresh-token={refresh}")];
            args.extend(target(&h, fw));
            let result = drive(&python, &args).await;
            assert_eq!(result["ok"], false, "{fw:?}: {result}");
            assert_eq!(
                (
                    result["error"]["status_code"].as_u64(),
                    result["error"]["detail"]["error"].as_str()
                ),
                (Some(400), Some("invalid_grant")),
                "{fw:?}: {result}"
            );
            assert_eq!(result["stored"], false, "{fw:?}");
            assert_eq!(
                path_status(&result),
                [(TOKEN_PATH.to_owned(), 400)],
                "{fw:?}"
            );
            assert_eq!(exchanges(&result)[0].form, ["refresh-token"], "{fw:?}");
            assert_eq!(h.idp.refresh_count(), refreshes, "{fw:?}");
        }
        let fresh = server_token(&h, fw).await;
        let access = fresh["access_token"].as_str().unwrap_or_default();
        assert_eq!(h.bearer(fw, PROTECTED, access).await.status, 200, "{fw:?}");
    }
}

/// A stored token whose refresh is refused, on a server without the device flow: the client
/// tries the refresh (400), falls back to the device flow (503), tries the refresh once more
/// in the browser flow (400), then logs in through the browser; the new token works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_falls_back_to_a_new_login() {
    let Some(python) = python() else { return };
    let h = harness(false).await;
    for fw in FRAMEWORKS {
        let mut seeded = server_token(&h, fw).await;
        seeded["refresh_token"] = Value::from("not-a-refresh-token");
        let result = drive_seeded_login(&h, &python, fw, &seeded).await;
        assert_new_working_token(&result, fw, &seeded);
        let token = || TOKEN_PATH.to_owned();
        assert_eq!(
            path_status(&result),
            [
                (token(), 400),
                (DEVICE_PATH.to_owned(), 503),
                (token(), 400),
                (token(), 200)
            ],
            "{fw:?}: {result}"
        );
        let all = exchanges(&result);
        assert_eq!(all[0].error.as_deref(), Some("invalid_grant"), "{fw:?}");
        assert_eq!(all[3].form[0], "code", "{fw:?}");
    }
}

/// Broker mode: the client logs in through the browser flow and gets this server's own tokens
/// (`iss` and `aud` the broker audience), which open a protected route; once its access token
/// has expired it refreshes with the broker's single-use refresh token and gets a new pair; the
/// spent refresh token, sent again, is refused with 400 `invalid_grant`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_mode_browser_login_and_refresh() {
    let Some(python) = python() else { return };
    let idp = broker::provider().await;
    idp.set_device_enabled(false);
    let store = Arc::new(MemoryStore::new());
    let h = broker::serve_broker(idp, store, |b| b, None).await;
    for fw in FRAMEWORKS {
        let mut args = vec!["login".to_owned()];
        args.extend(target(&h, fw));
        let first = drive(&python, &args).await;
        let access = assert_working_token(&first, fw);
        let (_, claims) = broker::jwt(&access);
        assert_eq!(
            (claims["iss"].as_str(), claims["aud"].as_str()),
            (Some(broker::BROKER_AUDIENCE), Some(broker::BROKER_AUDIENCE)),
            "{fw:?}: {claims}"
        );
        assert_eq!(
            path_status(&first),
            [(DEVICE_PATH.to_owned(), 503), (TOKEN_PATH.to_owned(), 200)],
            "{fw:?}"
        );

        let second = drive_seeded_login(&h, &python, fw, &first["token"]).await;
        assert_new_working_token(&second, fw, &first["token"]);
        assert_eq!(
            path_status(&second),
            [(TOKEN_PATH.to_owned(), 200)],
            "{fw:?}"
        );
        let spent = first["token"]["refresh_token"].as_str().unwrap_or_default();
        assert_ne!(
            second["token"]["refresh_token"].as_str(),
            Some(spent),
            "{fw:?}: the refresh token rotates"
        );

        let mut args = vec!["refresh".to_owned(), format!("--refresh-token={spent}")];
        args.extend(target(&h, fw));
        let reused = drive(&python, &args).await;
        assert_eq!(
            (
                reused["ok"].as_bool(),
                reused["error"]["status_code"].as_u64(),
                reused["error"]["detail"]["error"].as_str()
            ),
            (Some(false), Some(400), Some("invalid_grant")),
            "{fw:?}: {reused}"
        );
    }
}

/// Broker mode, device flow: the server itself paces the client's polls against the 5 s it
/// announced (E6), and the real client, which polls right after the start and then sleeps the
/// interval with -0.2..+0.4 s of jitter, is never slowed down: every refusal is
/// `authorization_pending`, and the approval gives this server's own tokens, which open a
/// protected route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_mode_device_login_keeps_the_pace() {
    let Some(python) = python() else { return };
    let store = Arc::new(MemoryStore::new());
    let h = broker::serve_broker(broker::provider().await, store, |b| b, None).await;
    for fw in FRAMEWORKS {
        let result = drive_device_login(&h, &python, fw).await;
        let access = assert_working_token(&result, fw);
        let (_, claims) = broker::jwt(&access);
        assert_eq!(
            claims["iss"].as_str(),
            Some(broker::BROKER_AUDIENCE),
            "{fw:?}"
        );
        let all = exchanges(&result);
        let polls = &all[1..];
        assert!(polls.len() >= 2, "{fw:?}: {all:?}");
        let (last, pending) = polls.split_last().expect("the client polled");
        assert_eq!(
            (last.path.as_str(), last.status),
            (TOKEN_PATH, 200),
            "{fw:?}"
        );
        for refusal in pending {
            assert_eq!(
                (refusal.status, refusal.error.as_deref()),
                (400, Some("authorization_pending")),
                "{fw:?}: {all:?}"
            );
        }
    }
}
