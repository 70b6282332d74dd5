//! mailgate: a self-hosted IMAP/SMTP mail server with the access control of a hosted mail
//! provider. See DESIGN.md for the model; each module below has one job.

pub mod access;
pub mod mail;
pub mod model;
pub mod store;
