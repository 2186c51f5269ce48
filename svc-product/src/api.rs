//! The HTTP API: `router()` and thin handlers (extract -> parse -> one transaction -> respond).
//!
//! | route                          | who                     | success              |
//! |--------------------------------|-------------------------|----------------------|
//! | `GET /products`                | anyone                  | 200 page of products |
//! | `GET /products/{id}`           | anyone                  | 200 product          |
//! | `POST /products`               | seller, admin           | 201 product + Location |
//! | `POST /products/{id}/restock`  | its seller, any admin   | 200 product          |
//! | `GET /admin/products`          | admin                   | 200 page of stock accounts, oldest first |
//! | `GET /admin/reservations`      | admin                   | 200 page of reservations, oldest first   |

use axum::{
    extract::{FromRef, FromRequestParts, State},
    http::{StatusCode, header, request::Parts},
    response::IntoResponse,
};
use common::{
    Role,
    auth::{AuthUser, Verifier},
    db::Db,
    http::{ApiError, Code, Json, Path, Query, path_id},
    openapi::{OpenApiRouter, Problem},
    paging::{Page, PageQuery, Paging},
};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    app::AppState,
    domain::{Category, InvalidInput, NewProduct, Product, restock_quantity},
    store::{self, ProductFilter, ReservationRow, StockAccount},
};

/// svc-product's routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(common::openapi::routes!(list_products, create_product))
        .routes(common::openapi::routes!(get_product))
        .routes(common::openapi::routes!(restock_product))
        .routes(common::openapi::routes!(admin_products))
        .routes(common::openapi::routes!(admin_reservations))
}

pub fn router(state: AppState) -> OpenApiRouter {
    routes().with_state(state)
}

/// `?category=&sellerId=&page=&size=`; an empty parameter counts as absent. `page` and `size` are
/// taken as `i64` (serde's `flatten` cannot read numbers from a query string, so not
/// [`common::paging::PageQuery`]) and judged by [`Paging::parse`], so a negative or oversized one
/// is a problem naming its parameter, like `0` is.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this category (`books`, `electronics`, ...).
    category: Option<String>,
    /// Only this seller's products (a UUID).
    seller_id: Option<String>,
    /// The page, from 1 (default 1).
    page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    size: Option<i64>,
}

/// The catalogue, newest first, optionally by category or seller.
#[utoipa::path(get, path = "/products", tag = "svc-product", params(ListQuery),
    responses((status = 200, description = "A page of products", body = Page<Product>)))]
async fn list_products(State(db): State<Db>, Query(q): Query<ListQuery>) -> Result<Json<Page<Product>>, ApiError> {
    let paging = Paging::parse(q.page, q.size)?;
    let category = non_empty(q.category).map(|c| Category::parse(Some(&c))).transpose().map_err(query_problem)?;
    let seller_id = non_empty(q.seller_id)
        .map(|s| Uuid::parse_str(&s))
        .transpose()
        .map_err(|_| ApiError::invalid(Code::InvalidQuery, "sellerId", "sellerId must be a UUID"))?;
    let filter = ProductFilter { category, seller_id };
    let (items, total) = db.read(move |c| store::list_products(c, &filter, paging)).await?;
    Ok(Json(Page::new(items, paging, total)))
}

/// One product.
#[utoipa::path(get, path = "/products/{id}", tag = "svc-product",
    params(("id" = String, Path, description = "The product's id (a UUID)")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "`PRODUCT_NOT_FOUND`: unknown, or not a UUID", body = Problem,
         content_type = "application/problem+json"),
    ))]
async fn get_product(State(db): State<Db>, Path(id): Path<String>) -> Result<Json<Product>, ApiError> {
    let id = path_id(&id, product_not_found)?;
    db.read(move |c| store::find_product(c, id)).await?.map(Json).ok_or_else(product_not_found)
}

/// `POST /products`. Fields are checked as JSON values, so a wrong type (`"price": "cheap"`) is
/// reported on its field like a wrong value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "Rust in Action", "price": 15000, "stock": 10, "category": "books"}))]
struct NewProductBody {
    #[serde(default)]
    #[schema(value_type = String)]
    name: Value,
    /// Won, 1 or more.
    #[serde(default)]
    #[schema(value_type = i64)]
    price: Value,
    /// Units on the shelf, 0 or more.
    #[serde(default)]
    #[schema(value_type = i64)]
    stock: Value,
    #[serde(default)]
    #[schema(value_type = String)]
    category: Value,
}

/// List a product (sellers and admins); the caller is its seller.
#[utoipa::path(post, path = "/products", tag = "svc-product", security(("bearer" = [])),
    request_body = NewProductBody,
    responses(
        (status = 201, description = "The product", body = Product,
         headers(("Location" = String, description = "`/products/{id}`"))),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem,
         content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: a customer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`INVALID_NAME`, `INVALID_PRICE`, `INVALID_STOCK`, `INVALID_CATEGORY` (`field` \
         names it) or `INVALID_BODY`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_product(
    State(db): State<Db>,
    SellerOrAdmin(seller): SellerOrAdmin,
    Json(body): Json<NewProductBody>,
) -> Result<impl IntoResponse, ApiError> {
    let new = NewProduct::parse(body.name.as_str(), body.price.as_i64(), body.stock.as_i64(), body.category.as_str())
        .map_err(field_problem)?;
    let id = Uuid::now_v7();
    let product = db.write(move |tx| store::insert_product(tx, id, seller.id, new).map_err(ApiError::from)).await?;
    tracing::info!(product.id = %product.id, seller.id = %seller.id, "product listed");
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/products/{id}"))], Json(product)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RestockBody {
    /// Units to add, 1 or more.
    #[serde(default)]
    #[schema(value_type = i64, example = 5)]
    quantity: Value,
}

/// Put more units on the shelf (the product's seller, or an admin).
///
/// `POST /products/{id}/restock`. Another seller's product is a 404, as if it did not exist.
#[utoipa::path(post, path = "/products/{id}/restock", tag = "svc-product", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product's id (a UUID)")),
    request_body = RestockBody,
    responses(
        (status = 200, description = "The product, restocked", body = Product),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem,
         content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: a customer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`PRODUCT_NOT_FOUND`: unknown, another seller's, or not a UUID", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "`INVALID_QUANTITY` (`field: quantity`) or `INVALID_BODY`", body = Problem,
         content_type = "application/problem+json"),
    ))]
async fn restock_product(
    State(db): State<Db>,
    SellerOrAdmin(user): SellerOrAdmin,
    Path(id): Path<String>,
    Json(body): Json<RestockBody>,
) -> Result<Json<Product>, ApiError> {
    // The body is judged before the product is looked up, so a 422 never depends on the id.
    let quantity = restock_quantity(body.quantity.as_i64()).map_err(field_problem)?;
    let id = path_id(&id, product_not_found)?;
    let product = db
        .write(move |tx| {
            let managed = store::find_product(tx, id)?.is_some_and(|p| p.is_managed_by(user.id, user.is_admin()));
            if !managed || !store::restock(tx, id, quantity)? {
                return Err(product_not_found());
            }
            store::find_product(tx, id)?.ok_or_else(product_not_found)
        })
        .await?;
    tracing::info!(
        product.id = %id, user.id = %user.id, added = quantity.get(), stock = product.stock,
        "product restocked"
    );
    Ok(Json(product))
}

/// Every product's stock accounts (`stocked = stock + reserved` holds for each), for audits.
#[utoipa::path(get, path = "/admin/products", tag = "svc-product", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of stock accounts, oldest first", body = Page<StockAccount>),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem,
         content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
async fn admin_products(
    State(db): State<Db>,
    user: AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<StockAccount>>, ApiError> {
    user.require(&[Role::Admin])?;
    let paging = query.parse()?;
    let (items, total) = db.read(move |c| store::list_stock_accounts(c, paging)).await?;
    Ok(Json(Page::new(items, paging, total)))
}

/// Every reservation, whatever its status, for audits.
#[utoipa::path(get, path = "/admin/reservations", tag = "svc-product", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of reservations, oldest first", body = Page<ReservationRow>),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem,
         content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
async fn admin_reservations(
    State(db): State<Db>,
    user: AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<ReservationRow>>, ApiError> {
    user.require(&[Role::Admin])?;
    let paging = query.parse()?;
    let (items, total) = db.read(move |c| store::list_reservations(c, paging)).await?;
    Ok(Json(Page::new(items, paging, total)))
}

/// A caller who may list and restock products: a seller or an admin. As an extractor it runs
/// before the body is read, so a customer gets 403 whatever they sent.
#[derive(Debug, Clone, Copy)]
pub struct SellerOrAdmin(pub AuthUser);

impl<S> FromRequestParts<S> for SellerOrAdmin
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        user.require(&[Role::Seller, Role::Admin])?;
        Ok(SellerOrAdmin(user))
    }
}

/// A path id that is not a UUID names no product: the same 404 as an unknown one.
fn product_not_found() -> ApiError {
    ApiError::new(Code::ProductNotFound, "no such product")
}

/// 422 naming the body field at fault.
fn field_problem(e: InvalidInput) -> ApiError {
    ApiError::invalid(e.code(), e.field(), e.to_string())
}

/// 400 `INVALID_QUERY` naming the query parameter at fault.
fn query_problem(e: InvalidInput) -> ApiError {
    ApiError::invalid(Code::InvalidQuery, e.field(), e.to_string())
}

fn non_empty(param: Option<String>) -> Option<String> {
    param.filter(|p| !p.is_empty())
}
