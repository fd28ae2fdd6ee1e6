//! Webhooks on the wire: signing as the Standard Webhooks specification
//! says ([`signing`]), which URLs may receive them and the DNS check at every
//! connection that keeps them off private networks ([`guard`]), the POST of
//! one delivery ([`client`]), and the retry schedule ([`schedule`]). The
//! delivery worker (`crate::service::delivery`) drives them; nothing here
//! knows the database.

pub mod client;
pub mod guard;
pub mod schedule;
pub mod signing;
