//! The demo catalogue (`--seed-demo` / `SEED_DEMO=true`): six products in three categories, listed
//! by one fixed demo seller, with fixed ids so the README and scripts can name them. It covers
//! the interesting cases: a price above svc-payment's per-payment limit (1,000,000 won), a product
//! with little stock, and one that is sold out.

use common::db::Db;
use uuid::Uuid;

use crate::{domain::NewProduct, store};

/// The seller every demo product belongs to. No account has this id unless one is created with it;
/// an admin can still restock the demo products.
pub const DEMO_SELLER_ID: Uuid = Uuid::from_u128(0x01938000_0000_7000_8000_000000000001);

/// One product of the demo catalogue.
#[derive(Debug, Clone, Copy)]
pub struct DemoProduct {
    pub id: Uuid,
    pub name: &'static str,
    pub category: &'static str,
    /// Whole won.
    pub price: i64,
    pub stock: i64,
}

/// The demo catalogue, in listing order (newest first once seeded).
pub const DEMO_PRODUCTS: [DemoProduct; 6] = [
    demo(0x106, "Geisha Drip Bags (10 pack)", "coffee", 32_000, 0),
    demo(0x105, "Ethiopia Yirgacheffe Beans 200g", "coffee", 18_000, 200),
    demo(0x104, "Designing Data-Intensive Applications", "books", 52_000, 2),
    demo(0x103, "The Rust Programming Language", "books", 45_000, 30),
    demo(0x102, "OLED TV 65-inch", "electronics", 2_490_000, 5),
    demo(0x101, "Wireless Earbuds", "electronics", 89_000, 100),
];

const fn demo(suffix: u128, name: &'static str, category: &'static str, price: i64, stock: i64) -> DemoProduct {
    DemoProduct { id: Uuid::from_u128(0x01938000_0000_7000_8000_000000000000 | suffix), name, category, price, stock }
}

/// Lists the demo catalogue if there are no products at all; a catalogue someone has started
/// filling is never touched. Returns how many products were listed.
pub async fn seed_demo_catalogue(db: &Db) -> anyhow::Result<usize> {
    let seeded = db
        .write(|tx| {
            if store::count_products(tx)? > 0 {
                return Ok(Vec::new());
            }
            let mut seeded = Vec::with_capacity(DEMO_PRODUCTS.len());
            // Oldest first, so that newest first lists them in the order of `DEMO_PRODUCTS`.
            for demo in DEMO_PRODUCTS.iter().rev() {
                let new = NewProduct::parse(Some(demo.name), Some(demo.price), Some(demo.stock), Some(demo.category))
                    .map_err(|e| anyhow::anyhow!("demo product {} breaks a rule: {e}", demo.name))?;
                seeded.push(store::insert_product(tx, demo.id, DEMO_SELLER_ID, new)?);
            }
            Ok::<_, anyhow::Error>(seeded)
        })
        .await?;
    if seeded.is_empty() {
        tracing::info!("catalogue not empty; demo catalogue not seeded");
        return Ok(0);
    }
    for p in &seeded {
        tracing::info!(
            product.id = %p.id, name = %p.name, category = %p.category, price = %p.price, stock = p.stock,
            "demo product listed"
        );
    }
    tracing::info!(products = seeded.len(), seller.id = %DEMO_SELLER_ID, "demo catalogue seeded");
    Ok(seeded.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_product_passes_the_listing_rules() {
        for demo in DEMO_PRODUCTS {
            let parsed = NewProduct::parse(Some(demo.name), Some(demo.price), Some(demo.stock), Some(demo.category));
            assert!(parsed.is_ok(), "{demo:?}: {parsed:?}");
        }
    }

    #[test]
    fn the_demo_covers_the_payment_limit_low_stock_and_sold_out() {
        assert!(DEMO_PRODUCTS.iter().any(|p| p.price > 1_000_000));
        assert!(DEMO_PRODUCTS.iter().any(|p| p.stock == 0));
        assert!(DEMO_PRODUCTS.iter().any(|p| (1..=5).contains(&p.stock)));
    }

    #[test]
    fn demo_ids_are_distinct_uuid_v7s() {
        let mut ids: Vec<Uuid> = DEMO_PRODUCTS.iter().map(|p| p.id).chain([DEMO_SELLER_ID]).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), DEMO_PRODUCTS.len() + 1);
    }
}
