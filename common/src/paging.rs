//! `?page=&size=` for every list, and the one shape of a page of results: pages count from 1, a
//! page holds 1 to 100 items (default 20); a bad parameter is a 400 `INVALID_QUERY` naming it.

use serde::{Deserialize, Serialize};

use crate::http::{ApiError, Code};

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u32,
    pub size: u32,
}

impl Paging {
    pub const DEFAULT_SIZE: u32 = 20;
    pub const MAX_SIZE: u32 = 100;

    /// Checks `page` then `size`; an absent one takes its default. Taken as `i64` so that a
    /// negative or oversized number is reported on its parameter like `0` is.
    pub fn parse(page: Option<i64>, size: Option<i64>) -> Result<Self, InvalidPaging> {
        let page = match page {
            None => 1,
            Some(n) => u32::try_from(n).ok().filter(|n| *n >= 1).ok_or(InvalidPaging::PAGE)?,
        };
        let size = match size {
            None => Self::DEFAULT_SIZE,
            Some(n) => u32::try_from(n).ok().filter(|n| (1..=Self::MAX_SIZE).contains(n)).ok_or(InvalidPaging::SIZE)?,
        };
        Ok(Paging { page, size })
    }

    /// Rows to skip; cannot overflow in `i64` for any `u32` page.
    pub fn offset(self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.size)
    }

    pub fn limit(self) -> i64 {
        i64::from(self.size)
    }
}

/// `?page=&size=` as sent, for a list that takes no other parameter. A list with filters declares
/// its own query struct: serde's `flatten` cannot read numbers from a query string.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The page, from 1 (default 1).
    #[param(minimum = 1, maximum = 4294967295_i64)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<i64>,
}

impl PageQuery {
    pub fn parse(self) -> Result<Paging, InvalidPaging> {
        Paging::parse(self.page, self.size)
    }
}

/// A `page` or `size` outside its range. The text says what the rule is, never what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidPaging {
    /// The query parameter at fault: `page` or `size`.
    pub field: &'static str,
    pub message: &'static str,
}

impl InvalidPaging {
    const PAGE: InvalidPaging = InvalidPaging { field: "page", message: "page counts from 1" };
    const SIZE: InvalidPaging = InvalidPaging { field: "size", message: "size must be from 1 to 100" };
}

impl From<InvalidPaging> for ApiError {
    fn from(e: InvalidPaging) -> Self {
        ApiError::invalid(Code::InvalidQuery, e.field, e.message)
    }
}

/// One page of a list, the shape every msa-shop list answers with:
/// `{"items": [...], "page": 1, "size": 20, "total": 42}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub page: u32,
    pub size: u32,
    /// How many items the whole list holds.
    pub total: i64,
}

impl<T: Serialize> Page<T> {
    pub fn new(items: Vec<T>, paging: Paging, total: i64) -> Self {
        Page { items, page: paging.page, size: paging.size, total }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn without_parameters_it_is_the_first_page_of_20() {
        assert_eq!(Paging::parse(None, None), Ok(Paging { page: 1, size: 20 }));
        assert_eq!(PageQuery::default().parse(), Ok(Paging { page: 1, size: 20 }));
    }

    #[test]
    fn page_n_skips_the_n_minus_1_pages_before_it() {
        let p = Paging::parse(Some(3), Some(10)).unwrap();
        assert_eq!((p.offset(), p.limit()), (20, 10));
        let last = Paging::parse(Some(i64::from(u32::MAX)), Some(100)).unwrap();
        assert_eq!(last.offset(), (i64::from(u32::MAX) - 1) * 100);
    }

    #[test]
    fn a_page_below_1_or_beyond_u32_is_refused_on_the_page_parameter() {
        for page in [0, -1, i64::from(u32::MAX) + 1] {
            assert_eq!(Paging::parse(Some(page), None).unwrap_err().field, "page", "{page}");
        }
    }

    #[test]
    fn a_size_must_be_from_1_to_100() {
        assert!(Paging::parse(None, Some(100)).is_ok());
        for size in [0, 101, -1] {
            assert_eq!(Paging::parse(None, Some(size)).unwrap_err().field, "size", "{size}");
        }
    }

    #[test]
    fn the_page_is_checked_before_the_size() {
        assert_eq!(Paging::parse(Some(0), Some(0)).unwrap_err().field, "page");
    }

    #[test]
    fn bad_paging_is_a_400_invalid_query_naming_the_parameter() {
        let e = ApiError::from(Paging::parse(None, Some(0)).unwrap_err());
        assert_eq!(
            (e.status(), e.code(), e.field(), e.detail()),
            (StatusCode::BAD_REQUEST, Code::InvalidQuery, Some("size"), "size must be from 1 to 100")
        );
        let e = ApiError::from(Paging::parse(Some(0), None).unwrap_err());
        assert_eq!((e.field(), e.detail()), (Some("page"), "page counts from 1"));
    }

    #[test]
    fn a_page_is_items_page_size_and_total() {
        let paging = Paging::parse(Some(2), Some(2)).unwrap();
        let json = serde_json::to_string(&Page::new(vec!["c"], paging, 3)).unwrap();
        assert_eq!(json, r#"{"items":["c"],"page":2,"size":2,"total":3}"#);
    }
}
