//! mailgate: a self-hosted IMAP/SMTP mail server with the access control of a hosted mail
//! provider. ARCHITECTURE.md describes the model and the modules; each module below has one job.

pub mod access;
pub mod address;
pub mod admin;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod connection;
pub mod console;
pub mod dkim;
pub mod dns;
pub mod domain_records;
#[doc(hidden)]
pub mod harness;
pub mod imap;
pub mod import;
pub mod login;
pub mod mail;
pub mod metrics;
pub mod model;
pub mod net;
pub mod password;
pub mod services;
pub mod smtp;
pub mod store;
pub mod tls;
