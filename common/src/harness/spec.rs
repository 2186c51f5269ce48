//! `docs/API-SPEC.md` against a service's OpenAPI document: the same routes, and for each the
//! same statuses (apart from [`GENERIC_STATUSES`], which the spec states once for every route).
//!
//! How the spec is read: a service's part is its `## <service> ...` section, plus the
//! `## Common to every service` section when the service serves the common routes. Each route is
//! a backquoted `METHOD /path` in a `### ` heading (several per heading when they answer alike; a
//! `?query` is not part of the path), and its statuses are the first cells of the table rows
//! under that heading.

use std::collections::{BTreeMap, BTreeSet};

use utoipa::openapi::OpenApi;

pub use crate::openapi::GENERIC_STATUSES;

/// The spec, as the tests read it.
pub const API_SPEC: &str = include_str!("../../../docs/API-SPEC.md");
const COMMON_SECTION: &str = "Common to every service";
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];

type Routes = BTreeMap<String, BTreeSet<String>>;

/// Panics with every difference between `doc` and the spec's sections for `service` (and the
/// common section, if `with_common`).
pub fn check_api_spec(service: &str, doc: &OpenApi, with_common: bool) {
    let mut spec = routes_in_section(API_SPEC, service);
    if with_common {
        spec.extend(routes_in_section(API_SPEC, COMMON_SECTION));
    }
    let documented = routes_in_document(doc);
    let mut problems = Vec::new();
    for (route, statuses) in &documented {
        match spec.get(route) {
            None => problems.push(format!("{route} is served and documented but not in docs/API-SPEC.md")),
            Some(listed) if listed != statuses => problems.push(format!(
                "{route}: the OpenAPI document has statuses {statuses:?}, docs/API-SPEC.md {listed:?} \
                 (not counting {GENERIC_STATUSES:?})"
            )),
            Some(_) => {}
        }
    }
    for route in spec.keys().filter(|r| !documented.contains_key(*r)) {
        problems.push(format!("{route} is in docs/API-SPEC.md but not in the OpenAPI document"));
    }
    assert!(problems.is_empty(), "docs/API-SPEC.md and {service}'s OpenAPI document differ:\n{}", problems.join("\n"));
}

/// Checks that the service at `base` (`http://127.0.0.1:port`) serves `expected` at
/// `/openapi.json` and Swagger UI at `/docs/`.
pub async fn check_served_document(base: &str, expected: &OpenApi) {
    let client = reqwest::Client::new();
    let res = client.get(format!("{base}/openapi.json")).send().await.expect("GET /openapi.json");
    assert_eq!(res.status(), 200);
    let served: serde_json::Value = res.json().await.expect("the document is JSON");
    assert_eq!(served, serde_json::to_value(expected).unwrap(), "the served document is the service's");
    assert_eq!(served["openapi"], "3.1.0");
    let ui = client.get(format!("{base}/docs/")).send().await.expect("GET /docs/");
    assert_eq!(ui.status(), 200);
    let html = ui.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "Swagger UI's page: {html:.200}");
    let script = client.get(format!("{base}/docs/swagger-ui-bundle.js")).send().await.expect("Swagger UI's script");
    assert_eq!(script.status(), 200, "Swagger UI's assets are served from the binary");
}

/// `METHOD /path` -> statuses, of every operation of `doc`, without the generic statuses.
pub fn routes_in_document(doc: &OpenApi) -> Routes {
    let json = serde_json::to_value(doc).expect("the document serialises");
    let mut routes = Routes::new();
    for (path, item) in json["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let method = method.to_uppercase();
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let statuses = op["responses"].as_object().into_iter().flatten().map(|(s, _)| s.clone());
            routes.insert(format!("{method} {path}"), specific(statuses));
        }
    }
    routes
}

/// `METHOD /path` -> statuses, of the `## <name>` section of `spec`.
pub fn routes_in_section(spec: &str, name: &str) -> Routes {
    let mut routes = Routes::new();
    let mut in_section = false;
    let mut current: Vec<String> = Vec::new();
    for line in spec.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            in_section = title == name || title.starts_with(&format!("{name} "));
            current.clear();
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            current = routes_in_heading(heading);
            for route in &current {
                routes.entry(route.clone()).or_default();
            }
            continue;
        }
        if let Some(status) = status_of_row(line) {
            for route in &current {
                routes.get_mut(route).expect("entered at its heading").extend(specific([status.clone()]));
            }
        }
    }
    routes
}

/// The backquoted `METHOD /path`s of a heading.
fn routes_in_heading(heading: &str) -> Vec<String> {
    heading
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|code| {
            let (method, path) = code.split_once(' ')?;
            let path = path.split('?').next()?.trim();
            (METHODS.contains(&method) && path.starts_with('/')).then(|| format!("{method} {path}"))
        })
        .collect()
}

/// The status in the first cell of a table row, if it is one.
fn status_of_row(line: &str) -> Option<String> {
    let first = line.strip_prefix('|')?.split('|').next()?.trim();
    (first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit())).then(|| first.to_owned())
}

fn specific(statuses: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    statuses.into_iter().filter(|s| !GENERIC_STATUSES.contains(&s.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_their_statuses_are_read_from_headings_and_tables() {
        let spec = "## svc-x (`127.0.0.1:1`)\n### `GET /a` and `GET /b?page=1`\n| status | code | when |\n|---|---|---|\n\
                    | 200 | | ok |\n| 404 | `NOT_FOUND` | no |\n| 500 | `INTERNAL` | generic |\n\
                    ### `POST /a`: make one\n| 201 | | made |\n## svc-y\n### `GET /c`\n| 200 | | |\n";
        let routes = routes_in_section(spec, "svc-x");
        let set = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(routes.len(), 3, "{routes:?}");
        assert_eq!(routes["GET /a"], set(&["200", "404"]));
        assert_eq!(routes["GET /b"], set(&["200", "404"]));
        assert_eq!(routes["POST /a"], set(&["201"]));
    }
}
