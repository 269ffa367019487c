//! An HTTP client for Entra ID token requests that keeps the last error response.
//!
//! `azure_identity` 1.0 (and 1.1.0-beta.1) parses Entra ID's error body into a struct that
//! borrows `error_description` as `&str`. serde cannot borrow a JSON string that contains
//! escapes, and Entra ID's descriptions always end with `\r\nTrace ID: …`, so the library
//! reports a JSON error instead of the response and its AADSTS codes. kvexec reads the
//! codes from the response kept here instead.
//!
//! Requests go through [`CredentialTransport`], which stops the library from retrying DNS
//! and TLS failures.

use crate::transport::CredentialTransport;
use azure_core::http::{AsyncRawResponse, HttpClient, Request};
use std::sync::{Arc, Mutex};

/// kvexec's HTTP client, remembering the status and body of the last non-2xx response.
#[derive(Debug)]
pub struct RecordingClient {
    inner: CredentialTransport,
    last_error: Mutex<Option<(u16, Vec<u8>)>>,
}

impl RecordingClient {
    pub fn new(inner: reqwest::Client) -> Arc<RecordingClient> {
        Arc::new(RecordingClient {
            inner: CredentialTransport(inner),
            last_error: Mutex::new(None),
        })
    }

    /// Takes the last attempt's error response out of the client, if the last attempt got
    /// one.
    pub fn take_last_error(&self) -> Option<(u16, Vec<u8>)> {
        self.slot().take()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(u16, Vec<u8>)>> {
        self.last_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl HttpClient for RecordingClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        // A retry that fails without a response must not leave an older response behind.
        *self.slot() = None;
        let response = self.inner.execute_request(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let (status, headers, body) = response.deconstruct();
        let bytes = body.collect().await?;
        *self.slot() = Some((u16::from(status), bytes.to_vec()));
        Ok(AsyncRawResponse::from_bytes(status, headers, bytes))
    }
}

