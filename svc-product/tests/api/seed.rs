//! The demo catalogue: listed on an empty database, with the documented fixed ids, and only once.

use serde_json::Value;
use svc_product::seed::{DEMO_PRODUCTS, DEMO_SELLER_ID, seed_demo_catalogue};

use crate::helpers::TestApp;

#[tokio::test]
async fn seed_demo_lists_the_fixed_catalogue_once() {
    let app = TestApp::spawn_with(&["--seed-demo"]).await;
    let page: Value = app.get("/products").await.json().await.unwrap();
    let listed: Vec<(&str, &str)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["sellerId"].as_str().unwrap()))
        .collect();
    let seller = DEMO_SELLER_ID.to_string();
    let expected: Vec<String> = DEMO_PRODUCTS.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(listed, expected.iter().map(|id| (id.as_str(), seller.as_str())).collect::<Vec<_>>());
    insta::assert_json_snapshot!(page, {
        ".items[].createdAt" => "[time]", ".items[].updatedAt" => "[time]"
    });

    assert_eq!(seed_demo_catalogue(app.db()).await.unwrap(), 0, "a catalogue with products is left alone");
    assert_eq!(app.count("SELECT count(*) FROM products", []), DEMO_PRODUCTS.len() as i64);
}

#[tokio::test]
async fn without_the_flag_the_catalogue_starts_empty() {
    let app = TestApp::spawn().await;
    assert_eq!(app.count("SELECT count(*) FROM products", []), 0);
}
