//! Restocking: the product's seller or an admin; nobody else may even see that it exists.

use common::Role;
use serde_json::{Value, json};

use crate::helpers::TestApp;

struct Listed {
    app: TestApp,
    path: String,
    seller_token: String,
}

/// One product with 5 units, listed by its seller.
async fn listed() -> Listed {
    let app = TestApp::spawn().await;
    let (_, seller_token) = app.user(Role::Seller);
    let product = app.create_product(&seller_token, "Beans", "coffee", 18_000, 5).await;
    let path = format!("/products/{}/restock", product["id"].as_str().unwrap());
    Listed { app, path, seller_token }
}

async fn restock(l: &Listed, token: Option<&str>, quantity: Value) -> (u16, Value) {
    let res = l.app.post(&l.path, token, json!({ "quantity": quantity })).await;
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn the_owning_seller_restocks_and_gets_the_product_back() {
    let l = listed().await;
    let (status, product) = restock(&l, Some(&l.seller_token), json!(7)).await;
    assert_eq!((status, product["stock"].as_i64()), (200, Some(12)));
    let (_, product) = restock(&l, Some(&l.seller_token), json!(1_000_000)).await;
    assert_eq!(product["stock"], 1_000_012);
}

#[tokio::test]
async fn an_admin_restocks_any_product() {
    let l = listed().await;
    let (_, admin) = l.app.user(Role::Admin);
    let (status, product) = restock(&l, Some(&admin), json!(3)).await;
    assert_eq!((status, product["stock"].as_i64()), (200, Some(8)));
}

#[tokio::test]
async fn another_seller_is_told_the_product_does_not_exist() {
    let l = listed().await;
    let (_, other) = l.app.user(Role::Seller);
    let (status, problem) = restock(&l, Some(&other), json!(3)).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("PRODUCT_NOT_FOUND")));
    let (_, product) = restock(&l, Some(&l.seller_token), json!(1)).await;
    assert_eq!(product["stock"], 6, "the other seller's restock changed nothing");
}

#[tokio::test]
async fn a_customer_is_forbidden_and_an_anonymous_caller_unauthenticated() {
    let l = listed().await;
    let (_, customer) = l.app.user(Role::Customer);
    let (status, problem) = restock(&l, Some(&customer), json!(3)).await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("FORBIDDEN")));
    let (status, problem) = restock(&l, None, json!(3)).await;
    assert_eq!((status, problem["code"].as_str()), (401, Some("UNAUTHENTICATED")));
}

#[tokio::test]
async fn a_quantity_outside_1_to_a_million_is_a_422_problem() {
    let l = listed().await;
    for quantity in [json!(0), json!(-1), json!(1_000_001), json!(2.5), json!("3"), Value::Null] {
        let (status, problem) = restock(&l, Some(&l.seller_token), quantity.clone()).await;
        assert_eq!(status, 422, "{quantity}");
        assert_eq!((problem["code"].as_str(), problem["field"].as_str()), (Some("INVALID_QUANTITY"), Some("quantity")));
    }
}

#[tokio::test]
async fn restocking_an_unknown_or_malformed_id_is_a_404_problem() {
    let l = listed().await;
    let (_, admin) = l.app.user(Role::Admin);
    for path in [format!("/products/{}/restock", uuid::Uuid::now_v7()), "/products/nope/restock".to_owned()] {
        let res = l.app.post(&path, Some(&admin), json!({"quantity": 1})).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "PRODUCT_NOT_FOUND");
    }
}
