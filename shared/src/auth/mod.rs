//! Who is calling: principals (subject + tenant + roles), how they are read from JWT claims, and
//! what each role may do (`principal`); JWT verification (`jwt`); the settings of both
//! (`settings`).

mod jwt;
mod principal;
mod settings;

pub use jwt::{mint_hs256, mint_token, Verifier};
pub use principal::{Access, AuthError, Identity, Principal, Role, Tenant};
pub use settings::{
    AuthSettings, Tenancy, LOCAL_DEV_AUDIENCE, LOCAL_DEV_ISSUER, LOCAL_DEV_JWT_SECRET,
};
