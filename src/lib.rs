//! kvexec resolves Azure Key Vault references in its environment, then execs a command
//! with the plaintext values present only in the child's environment.

pub mod check;
pub mod cli;
pub mod config;
pub mod credential;
pub mod diagnose;
pub mod environment;
pub mod exec;
pub mod reference;
pub mod resolve;
pub mod select;
pub mod vault;
