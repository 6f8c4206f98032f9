//! The admin API's OpenAPI document (`GET /admin/api/v1/openapi.json`): served without a
//! token, structurally sound, and in step with the routers both ways: every route is
//! documented, every documented operation is routed, operator-only routes are the ones
//! behind `operator_only`, request bodies have exactly the fields the handlers deserialize,
//! and real responses match the documented schemas.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use http::{header, Request, StatusCode};
use serde_json::{json, Map, Value};

use crate::oidc_support::{default_registration, oidc_hub, OidcHub};
use crate::sso::{send, Reply};
use crate::support::NOW;

const BASE: &str = "/admin/api/v1";
const DUMMY_ID: &str = "00000000-0000-4000-8000-000000000000";
const OPERATOR_ONLY_DETAIL: &str = "only the federation operator manages the registry";

/// Every (method, path) the admin API routers define, written by reading `api::router`,
/// `api::registry`, `admin_api::router` and `conversion_api::router`.
const ROUTES: &[(&str, &str)] = &[
    // api::router, reads
    ("get", "/agencies"),
    ("get", "/agencies/{code}"),
    ("get", "/accounts"),
    ("get", "/accounts/{id}"),
    ("get", "/relying-parties"),
    ("get", "/relying-parties/{id}"),
    ("get", "/connectors"),
    ("get", "/connectors/{id}"),
    // api::registry (behind operator_only)
    ("post", "/agencies"),
    ("post", "/accounts"),
    ("post", "/relying-parties/saml"),
    ("post", "/relying-parties/oidc"),
    ("put", "/relying-parties/{id}/connectors"),
    ("put", "/relying-parties/{id}/claim"),
    ("put", "/relying-parties/{id}/webhook"),
    ("delete", "/relying-parties/{id}/webhook"),
    ("get", "/relying-parties/{id}/webhook/deliveries"),
    ("post", "/admin-grants/top"),
    ("post", "/connectors/oidc"),
    ("post", "/connectors/certificate"),
    ("post", "/connectors/simpki"),
    ("post", "/connectors/saml"),
    ("put", "/connectors/{id}/enabled"),
    // admin_api::router
    ("get", "/me"),
    ("get", "/relying-parties/{rp}/members"),
    ("post", "/relying-parties/{rp}/members"),
    ("get", "/relying-parties/{rp}/roles"),
    ("post", "/relying-parties/{rp}/roles"),
    ("get", "/relying-parties/{rp}/admin-grants"),
    ("get", "/memberships/{id}"),
    ("delete", "/memberships/{id}"),
    ("post", "/memberships/{id}/activate"),
    ("post", "/memberships/{id}/lock"),
    ("post", "/memberships/{id}/unlock"),
    ("put", "/memberships/{id}/unit"),
    ("put", "/memberships/{id}/roles"),
    ("post", "/admin-grants"),
    ("post", "/admin-grants/{id}/revoke"),
    ("get", "/openapi.json"),
    // conversion_api::router
    ("post", "/conversions"),
    ("get", "/conversions"),
    ("get", "/conversions/{id}"),
];

/// The routes of `api::registry`, behind `operator_only`.
const OPERATOR_ONLY: &[(&str, &str)] = &[
    ("post", "/agencies"),
    ("post", "/accounts"),
    ("post", "/relying-parties/saml"),
    ("post", "/relying-parties/oidc"),
    ("put", "/relying-parties/{id}/connectors"),
    ("put", "/relying-parties/{id}/claim"),
    ("put", "/relying-parties/{id}/webhook"),
    ("delete", "/relying-parties/{id}/webhook"),
    ("get", "/relying-parties/{id}/webhook/deliveries"),
    ("post", "/admin-grants/top"),
    ("post", "/connectors/oidc"),
    ("post", "/connectors/certificate"),
    ("post", "/connectors/simpki"),
    ("post", "/connectors/saml"),
    ("put", "/connectors/{id}/enabled"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One documented operation.
struct Op {
    method: String,
    path: String,
    op: Value,
}

impl Op {
    fn key(&self) -> (String, String) {
        (self.method.clone(), self.path.clone())
    }
    fn public(&self) -> bool {
        self.op
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    }
    fn operator_only(&self) -> bool {
        self.op["x-fedhub-operator-only"] == json!(true)
    }
    fn documents(&self, status: StatusCode) -> bool {
        self.op["responses"].get(status.as_str()).is_some()
    }
    fn body_schema(&self) -> Option<&Value> {
        self.op
            .pointer("/requestBody/content/application~1json/schema")
    }
    /// The path with every parameter replaced by a dummy value.
    fn dummy_path(&self) -> String {
        let mut out = String::new();
        let mut rest = self.path.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').unwrap() + start;
            out.push_str(DUMMY_ID);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        format!("{BASE}{out}")
    }
    fn label(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }
}

struct Api {
    hub: OidcHub,
    doc: Value,
    operator: String,
}

impl Api {
    async fn new() -> Api {
        let hub = oidc_hub(default_registration());
        let operator = hub
            .store
            .write(|c| fedhub::tokens::create_api_token(c, "openapi-test", NOW))
            .unwrap();
        let r = send(
            &hub.app,
            Request::get(format!("{BASE}/openapi.json"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let doc = r.json();
        Api { hub, doc, operator }
    }

    fn ops(&self) -> Vec<Op> {
        let mut out = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if METHODS.contains(&method.as_str()) {
                    out.push(Op {
                        method: method.clone(),
                        path: path.clone(),
                        op: op.clone(),
                    });
                }
            }
        }
        out
    }

    fn op(&self, method: &str, path: &str) -> Op {
        Op {
            method: method.into(),
            path: path.into(),
            op: self.doc["paths"][path][method].clone(),
        }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut b = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        send(&self.hub.app, req).await
    }

    /// Calls `op` on dummy path values with a body of every documented field.
    async fn call_dummy(&self, op: &Op, token: Option<&str>) -> Reply {
        let body = op.body_schema().map(|s| dummy(&self.doc, s));
        self.call(&op.method, &op.dummy_path(), token, body.as_ref())
            .await
    }

    /// Calls a documented operation for real and checks the answer against its schema.
    async fn checked(&self, method: &str, path: &str, uri: &str, body: Option<Value>) -> Value {
        let op = self.op(method, path);
        assert!(!op.op.is_null(), "{method} {path} is not documented");
        let r = self
            .call(
                method,
                &format!("{BASE}{uri}"),
                Some(&self.operator),
                body.as_ref(),
            )
            .await;
        assert!(
            r.status.is_success(),
            "{} {uri}: {} {}",
            op.label(),
            r.status,
            r.body
        );
        let documented = &op.op["responses"][r.status.as_str()];
        assert!(
            !documented.is_null(),
            "{}: {} is not documented",
            op.label(),
            r.status
        );
        match documented.pointer("/content/application~1json/schema") {
            Some(schema) => {
                let value = r.json();
                let mut errors = Vec::new();
                conforms(&self.doc, schema, &value, &op.label(), &mut errors);
                assert!(errors.is_empty(), "{}", errors.join("\n"));
                value
            }
            None => {
                assert!(
                    r.body.is_empty(),
                    "{}: undocumented body {}",
                    op.label(),
                    r.body
                );
                Value::Null
            }
        }
    }
}

fn problem(r: &Reply) -> Value {
    assert!(
        r.header(header::CONTENT_TYPE)
            .is_some_and(|c| c.starts_with("application/problem+json")),
        "{} {}: not problem+json",
        r.status,
        r.body
    );
    r.json()
}

/// A schema with `$ref` followed and `allOf` merged into one object schema.
fn resolve(doc: &Value, schema: &Value) -> Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = doc
            .pointer(r.strip_prefix('#').unwrap())
            .unwrap_or_else(|| panic!("unresolved {r}"));
        return resolve(doc, target);
    }
    let Some(parts) = schema.get("allOf").and_then(Value::as_array) else {
        return schema.clone();
    };
    let mut merged = Map::new();
    let mut properties = Map::new();
    let mut required = Vec::new();
    for part in parts {
        let part = resolve(doc, part);
        if let Some(p) = part.get("properties").and_then(Value::as_object) {
            properties.extend(p.clone());
        }
        if let Some(r) = part.get("required").and_then(Value::as_array) {
            required.extend(r.iter().cloned());
        }
    }
    merged.insert("type".into(), json!("object"));
    merged.insert("properties".into(), Value::Object(properties));
    merged.insert("required".into(), Value::Array(required));
    Value::Object(merged)
}

/// The schema's types (`type` may be a string or a list).
fn types(schema: &Value) -> Vec<String> {
    match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

/// A value of the schema's first non-null type, with every documented property.
fn dummy(doc: &Value, schema: &Value) -> Value {
    let s = resolve(doc, schema);
    // One of several shapes: the first.
    if let Some(first) = s["oneOf"].as_array().and_then(|b| b.first()) {
        return dummy(doc, first);
    }
    if let Some(first) = s["enum"]
        .as_array()
        .and_then(|e| e.iter().find(|v| !v.is_null()))
    {
        return first.clone();
    }
    let t = types(&s)
        .into_iter()
        .find(|t| t != "null")
        .unwrap_or_default();
    match t.as_str() {
        "object" => Value::Object(
            s["properties"]
                .as_object()
                .map(|props| {
                    props
                        .iter()
                        .map(|(k, p)| (k.clone(), dummy(doc, p)))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "array" => json!([dummy(doc, &s["items"])]),
        "string" => json!("x"),
        "integer" => json!(s["minimum"].as_i64().unwrap_or(1).max(1)),
        "number" => json!(1.0),
        "boolean" => json!(true),
        other => panic!("no dummy for type {other:?} in {s}"),
    }
}

/// Checks `value` against `schema` (the subset of JSON Schema the document uses). Response
/// objects are closed: a field the document does not list is an error.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let s = resolve(doc, schema);
    let ts = types(&s);
    let type_ok = ts.is_empty()
        || ts.iter().any(|t| match t.as_str() {
            "null" => value.is_null(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        });
    if !type_ok {
        errors.push(format!("{at}: {value} is not {ts:?}"));
        return;
    }
    if let Some(allowed) = s["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    match value {
        Value::Object(fields) => {
            for r in s["required"].as_array().into_iter().flatten() {
                let name = r.as_str().unwrap();
                if !fields.contains_key(name) {
                    errors.push(format!("{at}: required field {name} is missing"));
                }
            }
            let props = s["properties"].as_object();
            for (k, v) in fields {
                match props.and_then(|p| p.get(k)) {
                    Some(p) => conforms(doc, p, v, &format!("{at}.{k}"), errors),
                    None => match s.get("additionalProperties") {
                        Some(extra) if extra.is_object() => {
                            conforms(doc, extra, v, &format!("{at}.{k}"), errors)
                        }
                        _ if props.is_none() && s.get("additionalProperties").is_none() => {}
                        _ => errors.push(format!("{at}: field {k} is not documented")),
                    },
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    conforms(doc, item_schema, v, &format!("{at}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

/// Every `$ref` in `v`, with where it is.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push((at.to_string(), x.as_str().unwrap_or_default().to_string()));
                } else {
                    refs(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(xs) => {
            for (i, x) in xs.iter().enumerate() {
                refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn openapi_is_served_without_a_token() {
    let api = Api::new().await;
    let r = api
        .call("get", &format!("{BASE}/openapi.json"), None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .header(header::CONTENT_TYPE)
        .is_some_and(|c| c.starts_with("application/json")));
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["servers"], json!([{ "url": BASE }]));
    assert_eq!(doc["info"]["title"], "fedhub admin API");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{ "bearer": [] }]));
}

#[tokio::test]
async fn openapi_documents_every_route_and_only_routes() {
    let api = Api::new().await;
    let documented: BTreeSet<(String, String)> = api.ops().iter().map(Op::key).collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routed.len(), ROUTES.len(), "ROUTES lists a route twice");
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unknown.is_empty(),
        "documented but not in ROUTES: {unknown:?}"
    );
    // Every documented operation is answered by a handler (not the fallback, not 405).
    for op in api.ops() {
        let r = api.call_dummy(&op, Some(&api.operator)).await;
        assert_ne!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{}: {}",
            op.label(),
            r.body
        );
        if r.status == StatusCode::NOT_FOUND {
            let p = problem(&r);
            assert_eq!(
                p["type"],
                "urn:fedhub:problem:not-found",
                "{}: {}",
                op.label(),
                r.body
            );
            let detail = p["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains(" not found: ") && !detail.starts_with("page "),
                "{}: route not found: {}",
                op.label(),
                r.body
            );
        }
        assert!(
            op.documents(r.status),
            "{}: answered {} which is not documented: {}",
            op.label(),
            r.status,
            r.body
        );
    }
    // And an undocumented path is the fallback's 404, which the check above tells apart.
    let r = api
        .call(
            "get",
            &format!("{BASE}/no-such-route"),
            Some(&api.operator),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(problem(&r)["detail"]
        .as_str()
        .unwrap()
        .starts_with("page not found"));
}

#[tokio::test]
async fn openapi_is_structurally_sound() {
    let api = Api::new().await;
    let doc = &api.doc;
    let mut all = Vec::new();
    refs(doc, "#", &mut all);
    assert!(!all.is_empty());
    for (at, r) in &all {
        let target = r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .filter(|t| !t.is_null());
        assert!(target.is_some(), "{at}: $ref {r:?} does not resolve");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for req in doc["security"].as_array().unwrap() {
        for name in req.as_object().unwrap().keys() {
            assert!(
                schemes.contains_key(name),
                "security scheme {name} is not defined"
            );
        }
    }
    let mut ids = BTreeSet::new();
    for op in api.ops() {
        let label = op.label();
        let id = op.op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: no operationId"));
        assert!(
            ids.insert(id.to_string()),
            "{label}: operationId {id} used twice"
        );
        assert!(
            op.op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{label}: no summary"
        );
        for tag in op.op["tags"].as_array().unwrap() {
            let known = doc["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == *tag);
            assert!(known, "{label}: tag {tag} is not declared");
        }
        // Path parameters: exactly the template's.
        let template: BTreeSet<String> = op
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(String::from)
            .collect();
        let mut declared = BTreeSet::new();
        let mut query = BTreeSet::new();
        for p in op.op["parameters"].as_array().into_iter().flatten() {
            let p = resolve(doc, p);
            let name = p["name"].as_str().unwrap().to_string();
            assert!(
                p["schema"].is_object(),
                "{label}: parameter {name} has no schema"
            );
            match p["in"].as_str().unwrap() {
                "path" => {
                    assert_eq!(p["required"], json!(true), "{label}: path parameter {name}");
                    declared.insert(name);
                }
                "query" => {
                    assert!(
                        query.insert(name.clone()),
                        "{label}: query parameter {name} twice"
                    );
                }
                other => panic!("{label}: parameter in {other}"),
            }
        }
        assert_eq!(template, declared, "{label}: path parameters");
        // Responses: a success, and every error as problem+json.
        let responses = op.op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{label}: no success response"
        );
        for (status, resp) in responses {
            let resp = resolve(doc, resp);
            assert!(
                resp["description"].is_string(),
                "{label} {status}: no description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                assert!(
                    resp.pointer("/content/application~1problem+json/schema")
                        .is_some(),
                    "{label} {status}: not problem+json"
                );
            }
        }
        if !op.public() {
            assert!(responses.contains_key("401"), "{label}: 401 not documented");
        }
        if op.body_schema().is_some() {
            assert!(responses.contains_key("400"), "{label}: 400 not documented");
        }
    }
    // The members list takes the filters of the user-management screen.
    let list = api.op("get", "/relying-parties/{rp}/members");
    let names: BTreeSet<String> = list.op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| resolve(doc, p)["name"].as_str().unwrap().to_string())
        .collect();
    for q in ["rp", "q", "status", "unit", "page", "per_page"] {
        assert!(names.contains(q), "members list: no {q} parameter");
    }
    for name in [
        "Account",
        "Agency",
        "RelyingParty",
        "Connector",
        "Member",
        "Page",
        "Grant",
        "Problem",
    ] {
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "no {name} schema"
        );
    }
}

#[tokio::test]
async fn openapi_security_matches_the_routes() {
    let api = Api::new().await;
    let marked: BTreeSet<(String, String)> = api
        .ops()
        .iter()
        .filter(|o| o.operator_only())
        .map(Op::key)
        .collect();
    let expected: BTreeSet<(String, String)> = OPERATOR_ONLY
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(marked, expected, "operator-only routes");
    let account = api.hub.account_id.clone();
    let (_, personal) = api
        .hub
        .store
        .write(|c| fedhub::tokens::issue_personal_token(c, &account, NOW))
        .unwrap();
    for op in api.ops() {
        let label = op.label();
        // Without a token: 401, except the public document.
        let r = api.call_dummy(&op, None).await;
        if op.public() {
            assert_eq!(r.status, StatusCode::OK, "{label}");
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{label}: {}", r.body);
            assert_eq!(problem(&r)["type"], "urn:fedhub:problem:unauthorized");
            assert!(r.header(header::WWW_AUTHENTICATE).is_some(), "{label}");
        }
        // A personal token (an account without grants): refused exactly where marked.
        let r = api.call_dummy(&op, Some(&personal)).await;
        assert!(
            op.documents(r.status),
            "{label}: {} is not documented: {}",
            r.status,
            r.body
        );
        let refused_as_registry =
            r.status == StatusCode::FORBIDDEN && problem(&r)["detail"] == OPERATOR_ONLY_DETAIL;
        assert_eq!(
            refused_as_registry,
            op.operator_only(),
            "{label} with a personal token: {} {}",
            r.status,
            r.body
        );
    }
}

#[tokio::test]
async fn openapi_request_bodies_have_the_fields_of_the_structs() {
    let api = Api::new().await;
    let mut checked = 0;
    for op in api.ops() {
        let Some(body_schema) = op.body_schema() else {
            continue;
        };
        // A body of several shapes (`oneOf`): each shape is checked as a body of its own.
        let shapes: Vec<Value> = match resolve(&api.doc, body_schema)["oneOf"].as_array() {
            Some(shapes) => shapes.clone(),
            None => vec![body_schema.clone()],
        };
        for schema in &shapes {
            checked += 1;
            let label = op.label();
            let s = resolve(&api.doc, schema);
            let full = dummy(&api.doc, schema);
            let send_body = |body: Value| {
                let api = &api;
                let uri = op.dummy_path();
                let method = op.method.clone();
                async move {
                    api.call(&method, &uri, Some(&api.operator), Some(&body))
                        .await
                }
            };
            // Every documented field at once: the body deserializes (whatever the handler then
            // says about the dummy values).
            let r = send_body(full.clone()).await;
            if r.status == StatusCode::BAD_REQUEST {
                let p = problem(&r);
                assert_ne!(
                    p["field"], "body",
                    "{label}: documented body refused: {}",
                    r.body
                );
            }
            // Each required field is required.
            for name in s["required"].as_array().unwrap() {
                let name = name.as_str().unwrap();
                let mut body = full.clone();
                body.as_object_mut().unwrap().remove(name);
                let r = send_body(body).await;
                assert_eq!(
                    r.status,
                    StatusCode::BAD_REQUEST,
                    "{label} without {name}: {}",
                    r.body
                );
                let p = problem(&r);
                // Refused when the body is read (serde), or by the request's own check
                // naming the field (fields that depend on `mode`).
                let by_serde = p["field"] == "body"
                    && p["rule"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("missing field `{name}`"));
                assert!(
                    by_serde || p["field"] == name,
                    "{label} without {name}: {}",
                    r.body
                );
            }
            // Each optional field is optional: the body without all of them still deserializes.
            let required: BTreeSet<&str> = s["required"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let minimal: Map<String, Value> = full
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| required.contains(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let r = send_body(Value::Object(minimal)).await;
            if r.status == StatusCode::BAD_REQUEST {
                assert_ne!(
                    problem(&r)["field"],
                    "body",
                    "{label}: required fields only: {}",
                    r.body
                );
            }
            // A field the document does not list is refused where the document says so.
            if s["additionalProperties"] == json!(false) {
                let mut body = full.clone();
                body.as_object_mut()
                    .unwrap()
                    .insert("not_a_field".into(), json!("x"));
                let r = send_body(body).await;
                assert_eq!(
                    r.status,
                    StatusCode::BAD_REQUEST,
                    "{label} with an unknown field: {}",
                    r.body
                );
                let p = problem(&r);
                assert!(
                    p["rule"]
                        .as_str()
                        .unwrap()
                        .contains("unknown field `not_a_field`"),
                    "{label} with an unknown field: {}",
                    r.body
                );
            }
        }
    }
    assert!(checked >= 16, "only {checked} request bodies");
}

#[tokio::test]
async fn openapi_response_schemas_match_real_answers() {
    let api = Api::new().await;
    let rp = api.hub.rp_id.clone();
    api.checked("get", "/me", "/me", None).await;
    let agencies = api.checked("get", "/agencies", "/agencies", None).await;
    assert!(!agencies.as_array().unwrap().is_empty());
    api.checked("get", "/agencies/{code}", "/agencies/000.00.00.H49", None)
        .await;
    let account = api
        .checked(
            "post",
            "/accounts",
            "/accounts",
            Some(json!({
                "kind": "agency",
                "display_name": "UBND tỉnh Quảng Ninh",
                "agency_code": "000.00.00.H49",
                "email": "vanphong@quangninh.gov.vn",
            })),
        )
        .await;
    let agency_account = account["id"].as_str().unwrap().to_string();
    api.checked(
        "get",
        "/accounts/{id}",
        &format!("/accounts/{agency_account}"),
        None,
    )
    .await;
    let found = api
        .checked("get", "/accounts", "/accounts?q=nguyen&limit=5", None)
        .await;
    assert!(!found.as_array().unwrap().is_empty());
    let rps = api
        .checked("get", "/relying-parties", "/relying-parties", None)
        .await;
    assert!(!rps.as_array().unwrap().is_empty());
    api.checked(
        "get",
        "/relying-parties/{id}",
        &format!("/relying-parties/{rp}"),
        None,
    )
    .await;
    let client = api
        .checked(
            "post",
            "/relying-parties/oidc",
            "/relying-parties/oidc",
            Some(json!({
                "owner_agency_code": "000.00.00.H49",
                "redirect_uris": ["https://dvc.quangninh.gov.vn/cb"],
            })),
        )
        .await;
    assert!(client["client_secret"].is_string());
    let connectors = api.checked("get", "/connectors", "/connectors", None).await;
    let connector = connectors[0]["id"].as_str().unwrap().to_string();
    api.checked(
        "get",
        "/connectors/{id}",
        &format!("/connectors/{connector}"),
        None,
    )
    .await;
    api.checked(
        "put",
        "/connectors/{id}/enabled",
        &format!("/connectors/{connector}/enabled"),
        Some(json!({ "enabled": true })),
    )
    .await;
    let switched = api
        .checked(
            "put",
            "/relying-parties/{id}/claim",
            &format!("/relying-parties/{rp}/claim"),
            Some(json!({ "enabled": true })),
        )
        .await;
    assert_eq!(switched["claim_enabled"], true);
    let hook = api
        .checked(
            "put",
            "/relying-parties/{id}/webhook",
            &format!("/relying-parties/{rp}/webhook"),
            Some(json!({ "url": "https://portal.example.gov.vn/fedhub/conversions" })),
        )
        .await;
    assert!(hook["secret"].as_str().unwrap().starts_with("fhwh_"));
    api.checked(
        "get",
        "/relying-parties/{id}/webhook/deliveries",
        &format!("/relying-parties/{rp}/webhook/deliveries"),
        None,
    )
    .await;
    api.checked(
        "delete",
        "/relying-parties/{id}/webhook",
        &format!("/relying-parties/{rp}/webhook"),
        None,
    )
    .await;
    api.checked(
        "put",
        "/relying-parties/{id}/connectors",
        &format!("/relying-parties/{rp}/connectors"),
        Some(json!({ "connectors": [connector] })),
    )
    .await;
    // Delegated administration.
    let member = api
        .checked(
            "post",
            "/relying-parties/{rp}/members",
            &format!("/relying-parties/{rp}/members"),
            Some(json!({ "account_id": api.hub.account_id, "unit": "000.00.00.H49" })),
        )
        .await;
    assert_eq!(member["status"], "not_activated");
    let id = member["id"].as_str().unwrap().to_string();
    let page = api
        .checked(
            "get",
            "/relying-parties/{rp}/members",
            &format!("/relying-parties/{rp}/members?q=nguyen&status=not_activated&unit=000.00.00.H49&page=1&per_page=10"),
            None,
        )
        .await;
    assert_eq!(page["total"], 1);
    let r = api
        .call(
            "get",
            &format!("{BASE}/relying-parties/{rp}/members?bogus=1"),
            Some(&api.operator),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "unknown query parameters are refused"
    );
    api.checked(
        "get",
        "/memberships/{id}",
        &format!("/memberships/{id}"),
        None,
    )
    .await;
    api.checked(
        "post",
        "/memberships/{id}/activate",
        &format!("/memberships/{id}/activate"),
        None,
    )
    .await;
    api.checked(
        "post",
        "/memberships/{id}/lock",
        &format!("/memberships/{id}/lock"),
        None,
    )
    .await;
    api.checked(
        "post",
        "/memberships/{id}/unlock",
        &format!("/memberships/{id}/unlock"),
        None,
    )
    .await;
    api.checked(
        "put",
        "/memberships/{id}/unit",
        &format!("/memberships/{id}/unit"),
        Some(json!({ "unit": "000.00.00.H49" })),
    )
    .await;
    api.checked(
        "post",
        "/relying-parties/{rp}/roles",
        &format!("/relying-parties/{rp}/roles"),
        Some(json!({ "name": "Cán bộ một cửa" })),
    )
    .await;
    let roles = api
        .checked(
            "get",
            "/relying-parties/{rp}/roles",
            &format!("/relying-parties/{rp}/roles"),
            None,
        )
        .await;
    assert!(roles.as_array().unwrap().contains(&json!("Cán bộ một cửa")));
    let member = api
        .checked(
            "put",
            "/memberships/{id}/roles",
            &format!("/memberships/{id}/roles"),
            Some(json!({ "roles": ["Cán bộ một cửa"], "user_group": "Một cửa" })),
        )
        .await;
    assert_eq!(member["roles"], json!(["Cán bộ một cửa"]));
    let grant = api
        .checked(
            "post",
            "/admin-grants/top",
            "/admin-grants/top",
            Some(json!({
                "account_id": agency_account,
                "rp_id": rp,
                "scope_agency_code": "000.00.00.H49",
            })),
        )
        .await;
    let grants = api
        .checked(
            "get",
            "/relying-parties/{rp}/admin-grants",
            &format!("/relying-parties/{rp}/admin-grants"),
            None,
        )
        .await;
    assert_eq!(grants.as_array().unwrap().len(), 1);
    let grant_id = grant["id"].as_str().unwrap().to_string();
    api.checked(
        "post",
        "/admin-grants/{id}/revoke",
        &format!("/admin-grants/{grant_id}/revoke"),
        None,
    )
    .await;
    api.checked(
        "delete",
        "/memberships/{id}",
        &format!("/memberships/{id}"),
        None,
    )
    .await;
    // Problems carry the documented fields.
    let r = api
        .call(
            "get",
            &format!("{BASE}/memberships/{id}"),
            Some(&api.operator),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let mut errors = Vec::new();
    conforms(
        &api.doc,
        &json!({ "$ref": "#/components/schemas/Problem" }),
        &problem(&r),
        "problem",
        &mut errors,
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for op in api.ops() {
        for status in op.op["responses"].as_object().unwrap().keys() {
            *statuses.entry(status.parse().unwrap()).or_default() += 1;
        }
    }
    for s in [400, 401, 403, 404, 409, 503] {
        assert!(statuses.contains_key(&s), "status {s} documented nowhere");
    }
}
