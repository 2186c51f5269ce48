use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with_admin};

#[tokio::test]
async fn sign_up_log_in_and_me_agree_on_who_the_user_is() {
    let app = spawn_app().await;
    let created = app.register("kim@example.com").await;
    let token = app.token("kim@example.com", PASSWORD).await;

    let res = app.me(Some(&token)).await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), created);
}

#[tokio::test]
async fn me_without_a_token_is_a_401_that_asks_for_a_bearer_token() {
    let app = spawn_app().await;

    let res = app.me(None).await;

    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let problem: Value = res.json().await.unwrap();
    insta::assert_json_snapshot!(problem);
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;
    app.register("lee@example.com").await;
    let kim = app.token("kim@example.com", PASSWORD).await;
    let lee = app.token("lee@example.com", PASSWORD).await;

    // Lee's claims under Kim's signature: a valid-looking token for an identity nobody signed.
    let (kim_header_and_claims, kim_signature) = kim.rsplit_once('.').unwrap();
    let (_, lee_claims) = lee.rsplit_once('.').unwrap().0.split_once('.').unwrap();
    let header = kim_header_and_claims.split('.').next().unwrap();
    let forged = format!("{header}.{lee_claims}.{kim_signature}");

    for token in [forged.as_str(), "not-a-jwt", &kim[..kim.len() - 4]] {
        let res = app.me(Some(token)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "INVALID_TOKEN");
    }
}

#[tokio::test]
async fn me_for_an_account_that_no_longer_exists_is_a_404() {
    let app = spawn_app().await;
    let user = app.register("kim@example.com").await;
    let token = app.token("kim@example.com", PASSWORD).await;
    app.connection().execute("DELETE FROM users WHERE id = ?1", [user["id"].as_str().unwrap()]).unwrap();

    let res = app.me(Some(&token)).await;

    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "USER_NOT_FOUND");
}

#[tokio::test]
async fn a_user_is_readable_at_its_location_by_itself_and_an_admin_only() {
    let app = spawn_app_with_admin(Some(("root@example.com", "root-password-1"))).await;
    let kim = app.register("kim@example.com").await;
    app.register("lee@example.com").await;
    let location = format!("/users/{}", kim["id"].as_str().unwrap());
    let get = async |token: String| app.http.get(app.url(&location)).bearer_auth(token).send().await.unwrap();

    let own = get(app.token("kim@example.com", PASSWORD).await).await;
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(own.json::<Value>().await.unwrap(), kim);
    let admin = get(app.token("root@example.com", "root-password-1").await).await;
    assert_eq!(admin.status(), StatusCode::OK);
    let other = get(app.token("lee@example.com", PASSWORD).await).await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    assert_eq!(other.json::<Value>().await.unwrap()["code"], "USER_NOT_FOUND");
}

#[tokio::test]
async fn an_id_that_is_not_a_uuid_is_a_user_not_found_like_any_other() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;
    let token = app.token("kim@example.com", PASSWORD).await;
    let get = async |path: String| app.http.get(app.url(&path)).bearer_auth(&token).send().await.unwrap();

    let not_a_uuid = get("/users/not-a-uuid".into()).await;
    let someone_else = get(format!("/users/{}", uuid::Uuid::now_v7())).await;

    assert_eq!((not_a_uuid.status(), someone_else.status()), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    let (not_a_uuid, someone_else): (Value, Value) =
        (not_a_uuid.json().await.unwrap(), someone_else.json().await.unwrap());
    assert_eq!(not_a_uuid["code"], "USER_NOT_FOUND");
    assert_eq!(not_a_uuid, someone_else, "the two 404s must be indistinguishable");
}
