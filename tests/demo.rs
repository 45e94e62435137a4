//! The demo routes, configured through `OIDC_*` variables as a deployment would, answer as the
//! README promises on both frameworks.

use oidc_auth::testing::MockProvider;
use oidc_auth_examples::{actix_demo, axum_demo, demo_auth_from};
use serde_json::json;

async fn serve_both(auth: oidc_auth::OidcAuth) -> [String; 2] {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let axum_addr = listener.local_addr().expect("addr");
    let router = axum_demo::router(auth.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let configure = actix_demo::configure(auth);
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new().configure(configure.clone())
            })
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("bind");
            let _ = tx.send(server.addrs()[0]);
            let _ = server.run().await;
        });
    });
    let actix_addr = rx.recv().expect("actix starts");
    [
        format!("http://{axum_addr}"),
        format!("http://{actix_addr}"),
    ]
}

async fn status(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
) -> (u16, serde_json::Value, Option<String>) {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("demo answers");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, response.json().await.unwrap_or_default(), challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_configured_from_the_environment_answers_as_documented() {
    let idp = MockProvider::start().await.expect("provider");
    let discovery = idp.discovery_url();
    let demo = demo_auth_from(|name| match name {
        "OIDC_DISCOVERY_URL" => Some(discovery.clone()),
        "OIDC_CLIENT_ID" => Some("shop".into()),
        "OIDC_AUDIENCE" => Some("shop".into()),
        _ => None,
    })
    .await
    .expect("demo configures");
    assert!(demo.mock.is_none());
    let user = idp.token().audience("shop").sub("alice").sign();
    let admin = idp
        .token()
        .audience("shop")
        .scope("admin")
        .claim("groups", json!(["admins"]))
        .sign();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for base in serve_both(demo.auth).await {
        let (code, _, challenge) = status(&client, format!("{base}/me"), None).await;
        assert_eq!(code, 401);
        assert!(challenge.unwrap_or_default().starts_with("Bearer"));
        assert_eq!(
            status(&client, format!("{base}/me"), Some(&user)).await.0,
            200
        );
        assert_eq!(
            status(&client, format!("{base}/admin"), Some(&user))
                .await
                .0,
            403
        );
        assert_eq!(
            status(&client, format!("{base}/admin"), Some(&admin))
                .await
                .0,
            200
        );
        assert_eq!(
            status(&client, format!("{base}/feed"), None).await.1,
            json!({"authenticated": false})
        );
        assert_eq!(
            status(&client, format!("{base}/feed"), Some(&user)).await.1,
            json!({"authenticated": true})
        );
        assert_eq!(status(&client, format!("{base}/public"), None).await.0, 200);
        let login = client
            .get(format!(
                "{base}/api/auth/v2/login?redirect_uri=http%3A%2F%2Flocalhost%3A53100%2Fcallback"
            ))
            .send()
            .await
            .expect("login answers");
        assert_eq!(
            login.status().as_u16(),
            302,
            "the auth router is mounted under /api"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_without_configuration_runs_its_own_provider() {
    let demo = demo_auth_from(|_| None).await.expect("demo configures");
    let mock = demo.mock.clone().expect("a mock provider is started");
    let token = mock
        .token()
        .audience(oidc_auth_examples::DEMO_AUDIENCE)
        .sign();
    let client = reqwest::Client::new();
    for base in serve_both(demo.auth).await {
        assert_eq!(
            status(&client, format!("{base}/me"), Some(&token)).await.0,
            200
        );
    }
}

/// The federation example: a token minted by either instance opens the other's protected
/// routes; a token of a broker neither trusts does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_example_instances_accept_each_others_tokens() {
    use oidc_auth_examples::federation::{CLIENT, start, subject_token};
    let pair = start("127.0.0.1:0", "127.0.0.1:0")
        .await
        .expect("both instances start");
    let stranger = start("127.0.0.1:0", "127.0.0.1:0")
        .await
        .expect("an unrelated pair starts");
    let client = reqwest::Client::new();
    let (id, secret) = CLIENT.split_once(':').unwrap_or_default();
    let mint = |base: String, subject: String| {
        let request = client
            .post(format!("{base}/api/auth/v2/token"))
            .basic_auth(id, Some(secret))
            .form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("subject_token", subject.as_str()),
            ]);
        async move {
            let body: serde_json::Value = request
                .send()
                .await
                .expect("token answer")
                .json()
                .await
                .unwrap_or_default();
            body["access_token"].as_str().unwrap_or_default().to_owned()
        }
    };
    let [a, b] = pair.urls.clone();
    let from_a = mint(a.clone(), subject_token(&pair.mock)).await;
    let from_b = mint(b.clone(), subject_token(&pair.mock)).await;
    let foreign = mint(stranger.urls[0].clone(), subject_token(&stranger.mock)).await;
    for (base, token, expected) in [
        (&b, &from_a, 200),
        (&a, &from_b, 200),
        (&a, &from_a, 200),
        (&a, &foreign, 401),
        (&b, &foreign, 401),
    ] {
        let (code, _, _) = status(&client, format!("{base}/me"), Some(token)).await;
        assert_eq!(code, expected, "{base}");
    }
}
