//! A listing request turned into domain types, or the first field that breaks a rule.
//!
//! The parsers take `Option`s: `None` is a field that is missing or has the wrong JSON type, which
//! breaks the same rule as a bad value and is reported the same way.

use common::Won;

use super::InvalidInput;

/// A product name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: Option<&str>) -> Result<Self, InvalidInput> {
        let name = raw.ok_or(InvalidInput::Name("name must be a string"))?.trim();
        if name.is_empty() {
            return Err(InvalidInput::Name("name must not be empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(InvalidInput::Name("name must be at most 200 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidInput::Name("name must not contain control characters"));
        }
        Ok(ProductName(name.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A unit price: whole won from 1 to 100,000,000. The cap keeps `price * quantity` far from
/// overflowing for any `u32` quantity, and catches a price typed with too many zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(Won);

impl Price {
    pub const MAX: Won = Won(100_000_000);

    pub fn parse(raw: Option<i64>) -> Result<Self, InvalidInput> {
        match raw {
            Some(won) if (1..=Self::MAX.0).contains(&won) => Ok(Price(Won(won))),
            _ => Err(InvalidInput::Price("price must be a whole number of won from 1 to 100000000")),
        }
    }

    pub fn won(self) -> Won {
        self.0
    }
}

/// The units a new listing starts with: 0 to 1,000,000 (zero lists it as sold out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock(u32);

impl Stock {
    pub const MAX: u32 = 1_000_000;

    pub fn parse(raw: Option<i64>) -> Result<Self, InvalidInput> {
        match raw {
            Some(units) if (0..=i64::from(Self::MAX)).contains(&units) => Ok(Stock(units as u32)),
            _ => Err(InvalidInput::Stock("stock must be a whole number from 0 to 1000000")),
        }
    }

    pub fn units(self) -> u32 {
        self.0
    }
}

/// A category slug: 1 to 50 of `a-z`, `0-9` and `-`. Taken as sent (not lowercased) so that what
/// a seller types is exactly what buyers filter by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category(String);

impl Category {
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: Option<&str>) -> Result<Self, InvalidInput> {
        const RULE: InvalidInput =
            InvalidInput::Category("category must be 1 to 50 characters of lowercase letters, digits and '-'");
        let slug = raw.ok_or(RULE)?;
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if slug.is_empty() || slug.len() > Self::MAX_CHARS || !slug.chars().all(valid_char) {
            return Err(RULE);
        }
        Ok(Category(slug.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A product about to be listed; its seller is the caller, never a field of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub name: ProductName,
    pub price: Price,
    pub stock: Stock,
    pub category: Category,
}

impl NewProduct {
    /// Checks the fields in request order and reports the first one at fault.
    pub fn parse(
        name: Option<&str>,
        price: Option<i64>,
        stock: Option<i64>,
        category: Option<&str>,
    ) -> Result<Self, InvalidInput> {
        Ok(NewProduct {
            name: ProductName::parse(name)?,
            price: Price::parse(price)?,
            stock: Stock::parse(stock)?,
            category: Category::parse(category)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use common::http::Code;

    use super::*;

    #[test]
    fn a_name_is_trimmed() {
        assert_eq!(ProductName::parse(Some("  Drip Bags ")).unwrap().into_string(), "Drip Bags");
    }

    #[test]
    fn a_missing_empty_or_blank_name_is_rejected() {
        for raw in [None, Some(""), Some(" \t ")] {
            assert_eq!(ProductName::parse(raw).unwrap_err().field(), "name", "{raw:?} was accepted");
        }
    }

    #[test]
    fn a_name_may_have_200_characters_but_not_201() {
        assert!(ProductName::parse(Some(&"커".repeat(200))).is_ok());
        assert!(ProductName::parse(Some(&"커".repeat(201))).is_err());
    }

    #[test]
    fn a_name_with_control_characters_is_rejected() {
        assert!(ProductName::parse(Some("Drip\nBags")).is_err());
    }

    #[test]
    fn a_price_runs_from_1_to_100_million_won() {
        assert_eq!(Price::parse(Some(1)).unwrap().won(), Won(1));
        assert_eq!(Price::parse(Some(100_000_000)).unwrap().won(), Won(100_000_000));
        for raw in [None, Some(0), Some(-1), Some(100_000_001), Some(i64::MAX)] {
            assert_eq!(Price::parse(raw).unwrap_err().code(), Code::InvalidPrice, "{raw:?} was accepted");
        }
    }

    #[test]
    fn the_highest_price_times_the_largest_quantity_still_fits_in_won() {
        assert!(Price::MAX.times(u32::MAX).is_some());
    }

    #[test]
    fn stock_runs_from_0_to_1_million() {
        assert_eq!(Stock::parse(Some(0)).unwrap().units(), 0);
        assert_eq!(Stock::parse(Some(1_000_000)).unwrap().units(), 1_000_000);
        for raw in [None, Some(-1), Some(1_000_001)] {
            assert_eq!(Stock::parse(raw).unwrap_err().code(), Code::InvalidStock, "{raw:?} was accepted");
        }
    }

    #[test]
    fn a_category_is_a_lowercase_slug() {
        for raw in ["books", "coffee-beans", "4k-tv", "-", &"a".repeat(50)] {
            assert_eq!(Category::parse(Some(raw)).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn a_category_that_is_not_a_slug_is_rejected() {
        let too_long = "a".repeat(51);
        for raw in [None, Some(""), Some("Books"), Some("coffee beans"), Some("café"), Some("a_b"), Some(&*too_long)] {
            assert_eq!(Category::parse(raw).unwrap_err().field(), "category", "{raw:?} was accepted");
        }
    }

    #[test]
    fn the_first_field_at_fault_is_the_one_reported() {
        let err = NewProduct::parse(None, None, None, None).unwrap_err();
        assert_eq!(err.field(), "name");
        let err = NewProduct::parse(Some("Beans"), Some(0), Some(-1), None).unwrap_err();
        assert_eq!(err.field(), "price");
        let err = NewProduct::parse(Some("Beans"), Some(18_000), Some(-1), None).unwrap_err();
        assert_eq!(err.field(), "stock");
        let err = NewProduct::parse(Some("Beans"), Some(18_000), Some(5), Some("Coffee")).unwrap_err();
        assert_eq!(err.field(), "category");
    }

    #[test]
    fn a_valid_listing_parses() {
        let p = NewProduct::parse(Some(" Beans "), Some(18_000), Some(5), Some("coffee")).unwrap();
        assert_eq!(
            (p.name.into_string(), p.price.won(), p.stock.units(), p.category.into_string()),
            ("Beans".to_owned(), Won(18_000), 5, "coffee".to_owned())
        );
    }
}
