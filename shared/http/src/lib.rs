//! Sondeo's HTTP edge, shared by the Lambda functions and local mode: routing, request parsing,
//! errors mapped to status codes with JSON (API) or HTML (respondent pages) bodies.
//!
//! Each function has one axum router (`collect::router`, `admin::router`); Lambda serves it
//! through `lambda_http::run`, local mode serves both merged (`local_router`) through
//! `axum::serve`. CORS, body limits, request ids and request spans are tower layers; the two
//! one-click routes take a fast path in front of the router with the same id, span and limit
//! (`routing::FastRoute`).

#![warn(missing_docs)]

pub mod admin;
pub mod alerts;
pub mod charts;
pub mod collect;
pub mod compose;
pub mod connections;
pub mod dashboard;
pub mod imports;
pub mod insights;
pub mod mail;
pub mod outbound;
pub mod pages;
pub mod respond;
pub mod routing;
pub mod snippet;
pub mod webhooks;

pub use respond::{HttpError, Request, Response, MAX_BODY_BYTES};
pub use routing::HttpService;

use http::Method;

/// Every function's routes in one router, as local mode serves them on one port.
pub fn local_router(
    collect: collect::CollectApp,
    admin: admin::AdminApp,
    webhooks: webhooks::WebhookApp,
) -> HttpService {
    let collect = std::sync::Arc::new(collect);
    routing::finish_with(
        collect::routes(collect.clone())
            .merge(admin::routes(admin))
            .merge(webhooks::routes(std::sync::Arc::new(webhooks))),
        Some(collect::clicks(collect)),
    )
}

/// Which function serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Respondent-facing and submission routes (`functions/collect`).
    Collect,
    /// API-key routes: metrics, surveys, links, connections (`functions/metrics`).
    Metrics,
    /// Store order webhooks (`functions/webhooks`).
    Webhooks,
}

/// Every HTTP route: method, path pattern, and the function whose router serves it (the
/// template gives each such function a URL; a test checks the routers serve exactly these).
pub const ROUTES: &[(&str, &str, Function)] = &[
    ("GET", "/r/{token}", Function::Collect),
    ("POST", "/r/{token}", Function::Collect),
    ("GET", "/u/{token}", Function::Collect),
    ("POST", "/u/{token}", Function::Collect),
    ("POST", "/v1/responses", Function::Collect),
    ("OPTIONS", "/v1/responses", Function::Collect),
    ("GET", "/v1/metrics", Function::Metrics),
    ("GET", "/v1/responses", Function::Metrics),
    ("GET", "/v1/responses.csv", Function::Metrics),
    ("GET", "/dashboard", Function::Metrics),
    ("POST", "/dashboard/login", Function::Metrics),
    ("POST", "/dashboard/logout", Function::Metrics),
    ("GET", "/v1/surveys", Function::Metrics),
    ("POST", "/v1/surveys", Function::Metrics),
    ("GET", "/v1/surveys/{id}", Function::Metrics),
    ("POST", "/v1/links", Function::Metrics),
    ("GET", "/v1/snippet", Function::Metrics),
    ("GET", "/v1/suppressions", Function::Metrics),
    ("POST", "/v1/suppressions", Function::Metrics),
    ("DELETE", "/v1/suppressions", Function::Metrics),
    ("POST", "/v1/links/bulk", Function::Metrics),
    ("POST", "/v1/imports", Function::Metrics),
    ("GET", "/v1/connections", Function::Metrics),
    ("POST", "/v1/connections", Function::Metrics),
    ("DELETE", "/v1/connections", Function::Metrics),
    ("GET", "/v1/invitations", Function::Metrics),
    (
        "POST",
        "/v1/webhooks/{platform}/{connection}",
        Function::Webhooks,
    ),
];

/// The function whose route matches a method and path, if any.
pub fn function_for(method: &Method, path: &str) -> Option<Function> {
    let path = path.strip_suffix('/').unwrap_or(path);
    ROUTES.iter().find_map(|(m, pattern, f)| {
        let mut segments = path.split('/');
        let mut parts = pattern.split('/');
        let same = *m == method.as_str()
            && loop {
                match (parts.next(), segments.next()) {
                    (None, None) => break true,
                    (Some(p), Some(s)) if (p.starts_with('{') && !s.is_empty()) || p == s => {
                        continue
                    }
                    _ => break false,
                }
            };
        same.then_some(*f)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_to_their_function_and_unknown_paths_to_none() {
        assert_eq!(
            function_for(&Method::GET, "/r/abc.def"),
            Some(Function::Collect)
        );
        assert_eq!(
            function_for(&Method::POST, "/v1/responses"),
            Some(Function::Collect)
        );
        assert_eq!(
            function_for(&Method::GET, "/v1/surveys/nps"),
            Some(Function::Metrics)
        );
        assert_eq!(
            function_for(&Method::GET, "/v1/surveys"),
            Some(Function::Metrics)
        );
        assert_eq!(function_for(&Method::DELETE, "/v1/surveys"), None);
        assert_eq!(function_for(&Method::GET, "/r/"), None);
        assert_eq!(function_for(&Method::GET, "/nope"), None);
    }
}

#[cfg(test)]
mod router_tests {
    use super::*;
    use async_trait::async_trait;
    use http::{header, StatusCode};
    use sondeo_domain::keys::ApiKeys;
    use sondeo_domain::orders::{Connection, Invitation, InvitationCursor, WebhookSecret};
    use sondeo_domain::ports::{
        ConnectionStore, CounterReader, CounterRow, InvitationScheduler, InvitationStore,
        ResponseQueue, ResponseReader, StoreError, SuppressionList, SurveyStore,
    };
    use sondeo_domain::response::{ResponseEvent, Suppression};
    use sondeo_domain::survey::Survey;
    use sondeo_domain::time::Day;
    use sondeo_domain::token::LinkKeyring;
    use std::collections::HashSet;
    use std::sync::Arc;
    use tower::ServiceExt;

    /// Stores nothing and finds nothing: enough to see which routes a router serves.
    struct Empty;

    #[async_trait]
    impl SurveyStore for Empty {
        async fn get_survey(&self, _: &str) -> Result<Option<Survey>, StoreError> {
            Ok(None)
        }
        async fn create_survey(&self, _: &Survey) -> Result<(), StoreError> {
            Ok(())
        }
        async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl ResponseQueue for Empty {
        async fn enqueue(&self, _: &ResponseEvent) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[async_trait]
    impl SuppressionList for Empty {
        async fn suppress(&self, _: &Suppression) -> Result<(), StoreError> {
            Ok(())
        }
        async fn unsuppress(&self, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn list_suppressed(&self) -> Result<Vec<Suppression>, StoreError> {
            Ok(Vec::new())
        }
        async fn suppressed_among(&self, _: &[String]) -> Result<HashSet<String>, StoreError> {
            Ok(HashSet::new())
        }
    }

    #[async_trait]
    impl ConnectionStore for Empty {
        async fn put_connection(
            &self,
            _: &Connection,
            _: &WebhookSecret,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn get_connection(
            &self,
            _: &str,
        ) -> Result<Option<(Connection, WebhookSecret)>, StoreError> {
            Ok(None)
        }
        async fn list_connections(&self) -> Result<Vec<Connection>, StoreError> {
            Ok(Vec::new())
        }
        async fn delete_connection(&self, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
    }

    #[async_trait]
    impl InvitationStore for Empty {
        async fn create_invitation(&self, _: &Invitation) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn get_invitation(&self, _: &str, _: &str) -> Result<Option<Invitation>, StoreError> {
            Ok(None)
        }
        async fn replace_invitation(
            &self,
            _: &Invitation,
            _: &Invitation,
        ) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn list_invitations(
            &self,
            _: Option<&str>,
            _: Option<&InvitationCursor>,
            _: usize,
        ) -> Result<Vec<Invitation>, StoreError> {
            Ok(Vec::new())
        }
        async fn due_invitations(&self, _: i64, _: usize) -> Result<Vec<Invitation>, StoreError> {
            Ok(Vec::new())
        }
        async fn claim_contact(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: i64,
            _: i64,
        ) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn release_contact(&self, _: &str, _: &str, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[async_trait]
    impl InvitationScheduler for Empty {
        async fn schedule(&self, _: &Invitation) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[async_trait]
    impl CounterReader for Empty {
        async fn read_counters(
            &self,
            _: &str,
            _: Day,
            _: Day,
        ) -> Result<Vec<CounterRow>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl ResponseReader for Empty {
        async fn responses_page(
            &self,
            _: &str,
            _: i64,
            _: i64,
            _: Option<&sondeo_domain::explore::ResponseCursor>,
            _: usize,
        ) -> Result<Vec<sondeo_domain::explore::StoredResponse>, StoreError> {
            Ok(Vec::new())
        }
    }

    const KEY: &str = "0123456789abcdef-router";

    fn routers() -> (HttpService, HttpService, HttpService) {
        let keyring = LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-router").unwrap();
        let collect = collect::router(collect::CollectApp {
            surveys: Arc::new(Empty),
            queue: Arc::new(Empty),
            keyring: keyring.clone(),
            allowed_origins: Vec::new(),
            suppressions: Arc::new(Empty),
        });
        let admin = admin::router(admin::AdminApp {
            surveys: Arc::new(Empty),
            suppressions: Arc::new(Empty),
            counters: Arc::new(Empty),
            responses: Arc::new(Empty),
            export_limits: Default::default(),
            api_keys: ApiKeys::from_list(KEY).unwrap(),
            keyring,
            base_url: None,
            orders: admin::OrdersConfig {
                connections: Arc::new(Empty),
                invitations: Arc::new(Empty),
                webhook_base_url: None,
            },
            alerts: None,
            imports: Some(Arc::new(Empty)),
        });
        let webhooks = webhooks::router(webhooks::WebhookApp {
            connections: Arc::new(Empty),
            surveys: Arc::new(Empty),
            invitations: Arc::new(Empty),
            suppressions: Arc::new(Empty),
            scheduler: Arc::new(Empty),
        });
        (collect, admin, webhooks)
    }

    async fn call(router: &HttpService, method: &str, path: &str) -> (StatusCode, String) {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        (status, code)
    }

    #[tokio::test]
    async fn each_router_serves_exactly_its_functions_routes() {
        let (collect, admin, webhooks) = routers();
        for (method, pattern, function) in ROUTES {
            let path = pattern
                .replace("{token}", "x.y")
                .replace("{id}", "nps")
                .replace("{platform}", "shopify")
                .replace("{connection}", "shop");
            let (own, others) = match function {
                Function::Collect => (&collect, [&admin, &webhooks]),
                Function::Metrics => (&admin, [&collect, &webhooks]),
                Function::Webhooks => (&webhooks, [&collect, &admin]),
            };
            let (status, code) = call(own, method, &path).await;
            assert!(
                code != "no_route" && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: its router answered {status} {code}"
            );
            for other in others {
                let (status, code) = call(other, method, &path).await;
                assert!(
                    code == "no_route" || status == StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is also served by another router ({status} {code})"
                );
            }
        }
    }

    #[tokio::test]
    async fn unknown_paths_answer_json_404_and_trailing_slashes_are_ignored() {
        let (collect, admin, _) = routers();
        assert_eq!(
            call(&collect, "GET", "/nope").await,
            (StatusCode::NOT_FOUND, "no_route".to_string())
        );
        assert_eq!(
            call(&admin, "DELETE", "/v1/surveys").await,
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed".to_string()
            )
        );
        let req = http::Request::builder()
            .method("PUT")
            .uri("/v1/suppressions")
            .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = admin.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "GET,HEAD,POST,DELETE");
        assert_eq!(call(&admin, "GET", "/v1/surveys/").await.0, StatusCode::OK);
    }

    /// Holds one survey and keeps what it is given.
    #[derive(Default)]
    struct One(std::sync::Mutex<Vec<ResponseEvent>>);

    #[async_trait]
    impl SurveyStore for One {
        async fn get_survey(&self, id: &str) -> Result<Option<Survey>, StoreError> {
            Ok((id == "nps").then(|| Survey {
                id: "nps".into(),
                kind: sondeo_domain::survey::SurveyKind::Nps,
                question: "How likely are you to recommend <b>us</b>?".into(),
                follow_up: "Why?".into(),
                locale: sondeo_domain::survey::Locale::Es,
                touchpoints: vec![sondeo_domain::survey::Touchpoint {
                    slug: "web".into(),
                    stage: None,
                }],
                public_key: None,
                brand: None,
                frequency_cap_days: None,
            }))
        }
        async fn create_survey(&self, _: &Survey) -> Result<(), StoreError> {
            Ok(())
        }
        async fn list_surveys(&self) -> Result<Vec<Survey>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[async_trait]
    impl ResponseQueue for One {
        async fn enqueue(&self, event: &ResponseEvent) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(event.clone());
            Ok(())
        }
    }

    /// Status, headers other than the request id, and body of a response.
    async fn whole(router: &HttpService, req: http::Request<axum::body::Body>) -> String {
        let resp = router.clone().oneshot(req).await.unwrap();
        let mut out = format!("{}\n", resp.status());
        let mut headers: Vec<_> = resp
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str() != routing::REQUEST_ID_HEADER)
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("?")))
            .collect();
        headers.sort();
        out += &headers.join("\n");
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        out + "\n\n" + &String::from_utf8_lossy(&body)
    }

    /// Method, URI, headers and body of a click.
    type Click<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);

    #[tokio::test]
    async fn the_click_fast_path_answers_exactly_as_the_router_does() {
        let keyring = LinkKeyring::from_spec("k1:0123456789abcdef0123456789abcdef-router").unwrap();
        let now = sondeo_domain::time::now_ms() / 1000;
        let claims = |respondent: &str, expires_at| sondeo_domain::token::LinkClaims {
            survey: "nps".into(),
            touchpoint: "web".into(),
            respondent: respondent.into(),
            issued_at: now - 10,
            expires_at,
        };
        let good = keyring
            .sign(&claims("ana@example.com", now + 3600))
            .unwrap();
        let expired = keyring.sign(&claims("bo@example.com", now - 1)).unwrap();
        let (fast_store, slow_store) = (Arc::new(One::default()), Arc::new(One::default()));
        let app = |store: &Arc<One>| collect::CollectApp {
            surveys: store.clone(),
            queue: store.clone(),
            keyring: keyring.clone(),
            allowed_origins: Vec::new(),
            suppressions: Arc::new(Empty),
        };
        let fast = collect::router(app(&fast_store));
        let slow = routing::finish(collect::routes(Arc::new(app(&slow_store))));
        let too_big = "x".repeat(MAX_BODY_BYTES + 1);
        let requests: Vec<Click> = vec![
            ("GET", format!("/r/{good}?score=9"), vec![], ""),
            (
                "GET",
                format!("/r/{good}?score=9"),
                vec![("accept", "application/json")],
                "",
            ),
            ("GET", format!("/r/{good}?score=11"), vec![], ""),
            (
                "GET",
                format!("/r/{good}?score=x&score=1"),
                vec![("accept-language", "en")],
                "",
            ),
            ("GET", format!("/r/{good}"), vec![], ""),
            ("GET", format!("/r/{expired}?score=9"), vec![], ""),
            (
                "GET",
                "/r/not-a-token?score=9".to_string(),
                vec![("accept-language", "en")],
                "",
            ),
            (
                "GET",
                "/r/not-a-token".to_string(),
                vec![("accept", "application/json")],
                "",
            ),
            (
                "POST",
                format!("/r/{good}"),
                vec![("content-type", "application/x-www-form-urlencoded")],
                "score=9&comment=bien",
            ),
            (
                "POST",
                format!("/r/{good}"),
                vec![
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("accept", "application/json"),
                ],
                "score=4",
            ),
            (
                "POST",
                format!("/r/{good}"),
                vec![("content-type", "application/json")],
                "{\"score\":",
            ),
            (
                "POST",
                format!("/r/{good}"),
                vec![("sec-purpose", "prefetch")],
                "score=9",
            ),
            ("POST", format!("/r/{expired}"), vec![], "score=9"),
            ("POST", format!("/r/{good}"), vec![], &too_big),
        ];
        for (method, uri, headers, body) in &requests {
            let req = || {
                let mut b = http::Request::builder().method(*method).uri(uri.as_str());
                for (name, value) in headers {
                    b = b.header(*name, *value);
                }
                b.body(axum::body::Body::from(body.to_string())).unwrap()
            };
            assert!(
                fast.fast
                    .as_ref()
                    .is_some_and(|f| f.serves(&req().method().clone(), req().uri().path())),
                "{method} {uri} is not on the fast path"
            );
            assert_eq!(
                whole(&fast, req()).await,
                whole(&slow, req()).await,
                "{method} {uri} {headers:?}"
            );
        }
        let answers = |store: &One| {
            store
                .0
                .lock()
                .unwrap()
                .iter()
                .map(|e| (e.score, e.comment.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(answers(&fast_store), answers(&slow_store));
        // Two clicks (GET with a valid score) and two answers were queued.
        assert_eq!(answers(&fast_store).len(), 4 + 1);
    }

    #[tokio::test]
    async fn the_click_fast_path_sets_and_echoes_request_ids_and_leaves_other_requests_to_the_router(
    ) {
        let (collect, _, _) = routers();
        let fast = collect.fast.clone().unwrap();
        for (method, path) in [
            ("HEAD", "/r/x.y"),
            ("PUT", "/r/x.y"),
            ("GET", "/r/x.y/"),
            ("GET", "/r/"),
            ("GET", "/r/a%2Fb"),
            ("GET", "/r/a/b"),
            ("POST", "/v1/responses"),
        ] {
            assert!(
                !fast.serves(&method.parse().unwrap(), path),
                "{method} {path}"
            );
        }
        let req = |id: Option<&str>| {
            let mut b = http::Request::get("/r/x.y?score=9");
            if let Some(id) = id {
                b = b.header(routing::REQUEST_ID_HEADER, id);
            }
            b.body(axum::body::Body::empty()).unwrap()
        };
        let resp = collect
            .clone()
            .oneshot(req(Some("from-the-client")))
            .await
            .unwrap();
        assert_eq!(
            resp.headers()[routing::REQUEST_ID_HEADER],
            "from-the-client"
        );
        let resp = collect.clone().oneshot(req(None)).await.unwrap();
        let id = resp.headers()[routing::REQUEST_ID_HEADER].to_str().unwrap();
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }

    #[tokio::test]
    async fn every_response_carries_a_request_id() {
        let (collect, _, _) = routers();
        let req = http::Request::builder()
            .uri("/nope")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = collect.clone().oneshot(req).await.unwrap();
        let id = resp.headers()[routing::REQUEST_ID_HEADER].to_str().unwrap();
        assert_eq!(id.len(), 16, "{id}");
    }
}
