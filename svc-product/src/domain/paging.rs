//! `?page=&size=` for lists: pages count from 1, a page holds 1 to 100 items (default 20).

use super::InvalidInput;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u32,
    pub size: u32,
}

impl Paging {
    pub const DEFAULT_SIZE: u32 = 20;
    pub const MAX_SIZE: u32 = 100;

    pub fn parse(page: Option<u32>, size: Option<u32>) -> Result<Self, InvalidInput> {
        let page = page.unwrap_or(1);
        let size = size.unwrap_or(Self::DEFAULT_SIZE);
        if page == 0 {
            return Err(InvalidInput::Page("page counts from 1"));
        }
        if !(1..=Self::MAX_SIZE).contains(&size) {
            return Err(InvalidInput::Size("size must be from 1 to 100"));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_parameters_it_is_the_first_page_of_20() {
        assert_eq!(Paging::parse(None, None), Ok(Paging { page: 1, size: 20 }));
    }

    #[test]
    fn page_n_skips_the_n_minus_1_pages_before_it() {
        let p = Paging::parse(Some(3), Some(10)).unwrap();
        assert_eq!((p.offset(), p.limit()), (20, 10));
        assert_eq!(Paging::parse(Some(u32::MAX), Some(100)).unwrap().offset(), (i64::from(u32::MAX) - 1) * 100);
    }

    #[test]
    fn page_zero_is_rejected() {
        assert_eq!(Paging::parse(Some(0), None).unwrap_err().field(), "page");
    }

    #[test]
    fn a_size_must_be_from_1_to_100() {
        assert!(Paging::parse(None, Some(100)).is_ok());
        assert_eq!(Paging::parse(None, Some(0)).unwrap_err().field(), "size");
        assert_eq!(Paging::parse(None, Some(101)).unwrap_err().field(), "size");
    }
}
