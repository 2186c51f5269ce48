//! Listing, showing and creating products.

use common::Role;
use serde_json::{Value, json};

use crate::helpers::TestApp;

fn names(page: &Value) -> Vec<&str> {
    page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect()
}

async fn json_of(res: reqwest::Response) -> Value {
    res.json().await.unwrap()
}

#[tokio::test]
async fn the_listing_is_public_newest_first_and_paged() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.user(Role::Seller);
    for name in ["first", "second", "third"] {
        app.create_product(&seller, name, "books", 10_000, 1).await;
    }

    let res = app.get("/products?size=2").await;
    assert_eq!(res.status(), 200);
    let page = json_of(res).await;
    assert_eq!(names(&page), ["third", "second"]);
    assert_eq!((page["page"].as_u64(), page["size"].as_u64(), page["total"].as_u64()), (Some(1), Some(2), Some(3)));

    let page = json_of(app.get("/products?size=2&page=2").await).await;
    assert_eq!(names(&page), ["first"]);
    let page = json_of(app.get("/products?size=2&page=3").await).await;
    assert_eq!((names(&page).len(), page["total"].as_u64()), (0, Some(3)));

    let page = json_of(app.get("/products").await).await;
    assert_eq!((page["page"].as_u64(), page["size"].as_u64()), (Some(1), Some(20)), "the default paging");
}

#[tokio::test]
async fn the_listing_filters_by_category_and_seller() {
    let app = TestApp::spawn().await;
    let (kim, kim_token) = app.user(Role::Seller);
    let (_, lee_token) = app.user(Role::Seller);
    app.create_product(&kim_token, "kim book", "books", 10_000, 1).await;
    app.create_product(&kim_token, "kim beans", "coffee", 10_000, 1).await;
    app.create_product(&lee_token, "lee book", "books", 10_000, 1).await;

    let page = json_of(app.get("/products?category=books").await).await;
    assert_eq!((names(&page), page["total"].as_u64()), (vec!["lee book", "kim book"], Some(2)));
    let page = json_of(app.get(&format!("/products?sellerId={kim}")).await).await;
    assert_eq!(names(&page), ["kim beans", "kim book"]);
    let page = json_of(app.get(&format!("/products?category=books&sellerId={kim}")).await).await;
    assert_eq!((names(&page), page["total"].as_u64()), (vec!["kim book"], Some(1)));
    let page = json_of(app.get("/products?category=&sellerId=").await).await;
    assert_eq!(page["total"], 3, "empty filters are no filters");
    let page = json_of(app.get("/products?category=toys").await).await;
    assert_eq!(page["total"], 0);
}

#[tokio::test]
async fn an_invalid_query_is_a_400_problem_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("size=0", "size"),
        ("size=101", "size"),
        ("page=0", "page"),
        ("page=-1", "page"),
        ("size=-1", "size"),
        ("page=4294967296", "page"),
        ("category=Books", "category"),
        ("sellerId=not-a-uuid", "sellerId"),
    ] {
        let res = app.get(&format!("/products?{query}")).await;
        assert_eq!(res.status(), 400, "{query}");
        let problem = json_of(res).await;
        assert_eq!(
            (problem["code"].as_str(), problem["field"].as_str()),
            (Some("INVALID_QUERY"), Some(field)),
            "{query}"
        );
    }
    let res = app.get("/products?page=abc").await;
    assert_eq!(json_of(res).await["code"], "INVALID_QUERY");
}

#[tokio::test]
async fn a_product_is_shown_by_id_to_anyone() {
    let app = TestApp::spawn().await;
    let (seller, token) = app.user(Role::Seller);
    let created = app.create_product(&token, "Ethiopia Beans 200g", "coffee", 18_000, 40).await;

    let res = app.get(&format!("/products/{}", created["id"].as_str().unwrap())).await;
    assert_eq!(res.status(), 200);
    let shown = json_of(res).await;
    assert_eq!(shown, created);
    assert_eq!(shown["sellerId"], seller.to_string());
    insta::assert_json_snapshot!(shown, {
        ".id" => "[product]", ".sellerId" => "[seller]", ".createdAt" => "[time]", ".updatedAt" => "[time]"
    });
}

#[tokio::test]
async fn an_unknown_or_malformed_product_id_is_a_404_problem() {
    let app = TestApp::spawn().await;
    let res = app.get(&format!("/products/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    insta::assert_json_snapshot!(json_of(res).await);

    let res = app.get("/products/not-a-uuid").await;
    assert_eq!(res.status(), 404);
    assert_eq!(json_of(res).await["code"], "PRODUCT_NOT_FOUND");
}

#[tokio::test]
async fn a_seller_lists_a_product_under_their_own_id() {
    let app = TestApp::spawn().await;
    let (seller, token) = app.user(Role::Seller);
    let body = json!({"name": "  Wireless Earbuds ", "price": 89_000, "stock": 0, "category": "electronics"});
    let res = app.post("/products", Some(&token), body).await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created = json_of(res).await;

    assert_eq!(location, format!("/products/{}", created["id"].as_str().unwrap()));
    assert_eq!(created["sellerId"], seller.to_string());
    assert_eq!(created["name"], "Wireless Earbuds", "the name is trimmed");
    assert_eq!(created["createdAt"], created["updatedAt"]);
    assert_eq!(json_of(app.get(&location).await).await, created);
}

#[tokio::test]
async fn an_admin_may_list_a_product() {
    let app = TestApp::spawn().await;
    let (admin, token) = app.user(Role::Admin);
    let created = app.create_product(&token, "Gift card", "gifts", 50_000, 10).await;
    assert_eq!(created["sellerId"], admin.to_string());
}

#[tokio::test]
async fn a_customer_may_not_list_a_product_whatever_they_send() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user(Role::Customer);
    let valid = json!({"name": "Beans", "price": 1, "stock": 1, "category": "coffee"});
    for body in [valid, json!({"price": "free"})] {
        let res = app.post("/products", Some(&token), body).await;
        assert_eq!(res.status(), 403);
        assert_eq!(json_of(res).await["code"], "FORBIDDEN");
    }
    assert_eq!(json_of(app.get("/products").await).await["total"], 0);
}

#[tokio::test]
async fn listing_a_product_needs_a_valid_token() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "Beans", "price": 1, "stock": 1, "category": "coffee"});
    let res = app.post("/products", None, body.clone()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    insta::assert_json_snapshot!(json_of(res).await);

    let res = app.post("/products", Some("not.a.token"), body).await;
    assert_eq!((res.status().as_u16(), json_of(res).await["code"].clone()), (401, json!("INVALID_TOKEN")));
}

#[tokio::test]
async fn an_invalid_field_is_a_422_problem_with_its_code_and_field() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user(Role::Seller);
    let valid = json!({"name": "Beans", "price": 18_000, "stock": 5, "category": "coffee"});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (without("name"), "INVALID_NAME", "name"),
        (with("name", json!("   ")), "INVALID_NAME", "name"),
        (with("name", json!("x".repeat(201))), "INVALID_NAME", "name"),
        (with("name", json!(42)), "INVALID_NAME", "name"),
        (without("price"), "INVALID_PRICE", "price"),
        (with("price", json!(0)), "INVALID_PRICE", "price"),
        (with("price", json!(100_000_001)), "INVALID_PRICE", "price"),
        (with("price", json!(1500.5)), "INVALID_PRICE", "price"),
        (with("price", json!("18000")), "INVALID_PRICE", "price"),
        (with("stock", json!(-1)), "INVALID_STOCK", "stock"),
        (with("stock", json!(1_000_001)), "INVALID_STOCK", "stock"),
        (without("category"), "INVALID_CATEGORY", "category"),
        (with("category", json!("Coffee")), "INVALID_CATEGORY", "category"),
        (with("category", json!("coffee beans")), "INVALID_CATEGORY", "category"),
        (with("category", json!("c".repeat(51))), "INVALID_CATEGORY", "category"),
        (with("sellerId", json!(uuid::Uuid::now_v7())), "INVALID_BODY", "sellerId"),
    ];
    for (body, code, field) in cases {
        let res = app.post("/products", Some(&token), body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        let problem = json_of(res).await;
        assert_eq!((problem["code"].as_str(), problem["field"].as_str()), (Some(code), Some(field)), "{body}");
    }

    let res = app.post("/products", Some(&token), with("price", json!(-5))).await;
    insta::assert_json_snapshot!(json_of(res).await);
    assert_eq!(json_of(app.get("/products").await).await["total"], 0, "nothing invalid was listed");
}

#[tokio::test]
async fn the_limits_themselves_are_accepted() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user(Role::Seller);
    let created = app.create_product(&token, &"x".repeat(200), &"c".repeat(50), 100_000_000, 1_000_000).await;
    assert_eq!((created["price"].as_i64(), created["stock"].as_i64()), (Some(100_000_000), Some(1_000_000)));
    let cheapest = app.create_product(&token, "x", "c", 1, 0).await;
    assert_eq!((cheapest["price"].as_i64(), cheapest["stock"].as_i64()), (Some(1), Some(0)));
}
