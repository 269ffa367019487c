//! Tests of the emulator through real TLS connections on loopback, one module per service.

mod binary;
mod entra;
mod faults;
mod identity;
mod keyvault;
mod support;
mod transport;
