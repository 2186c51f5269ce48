//! Who may see and do what with settlements.

use common::{Role, auth::AuthUser};
use uuid::Uuid;

/// The caller's role may not do this, or a seller asked for another seller's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    #[error("only sellers and admins can read settlements")]
    Role,
    #[error("a seller can only read its own settlements")]
    OtherSeller,
    #[error("only admins can close a business day")]
    NotAdmin,
}

/// The seller filter a report runs with: an admin gets what it asked for (all sellers when it
/// named none), a seller always gets its own rows and is refused another seller's, a customer
/// gets nothing.
pub fn report_scope(caller: &AuthUser, asked: Option<Uuid>) -> Result<Option<Uuid>, Forbidden> {
    match caller.role {
        Role::Admin => Ok(asked),
        Role::Seller if asked.is_none_or(|s| s == caller.id) => Ok(Some(caller.id)),
        Role::Seller => Err(Forbidden::OtherSeller),
        Role::Customer => Err(Forbidden::Role),
    }
}

/// Only admins close days.
pub fn may_close(caller: &AuthUser) -> Result<(), Forbidden> {
    if caller.is_admin() { Ok(()) } else { Err(Forbidden::NotAdmin) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> AuthUser {
        AuthUser { id: Uuid::now_v7(), role }
    }

    #[test]
    fn an_admin_reads_every_seller_or_the_one_it_names() {
        let admin = user(Role::Admin);
        let seller = Uuid::now_v7();
        assert_eq!(report_scope(&admin, None), Ok(None));
        assert_eq!(report_scope(&admin, Some(seller)), Ok(Some(seller)));
    }

    #[test]
    fn a_seller_reads_only_its_own_rows_and_is_refused_anyone_elses() {
        let seller = user(Role::Seller);
        assert_eq!(report_scope(&seller, None), Ok(Some(seller.id)));
        assert_eq!(report_scope(&seller, Some(seller.id)), Ok(Some(seller.id)));
        assert_eq!(report_scope(&seller, Some(Uuid::now_v7())), Err(Forbidden::OtherSeller));
    }

    #[test]
    fn a_customer_reads_no_settlements_and_only_admins_close_days() {
        assert_eq!(report_scope(&user(Role::Customer), None), Err(Forbidden::Role));
        assert_eq!(may_close(&user(Role::Admin)), Ok(()));
        assert_eq!(may_close(&user(Role::Seller)), Err(Forbidden::NotAdmin));
        assert_eq!(may_close(&user(Role::Customer)), Err(Forbidden::NotAdmin));
    }
}
