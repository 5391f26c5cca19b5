//! [`Health`]: which health checks fail right now. While any does, `GET /v2/` answers 503
//! `UNAVAILABLE`, as registry:2's does with `health.storagedriver`: load balancers and clients
//! probing the API see the registry is not fit to serve.

use std::collections::BTreeMap;
use std::sync::RwLock;

/// The failing health checks, by name, with what each last reported. Shared between the checks
/// that update it and the service that answers from it.
#[derive(Debug, Default)]
pub struct Health {
    failing: RwLock<BTreeMap<String, String>>,
}

impl Health {
    /// Every check passing.
    pub fn new() -> Health {
        Health::default()
    }

    /// Records that the check `name` fails with `error`.
    pub fn fail(&self, name: &str, error: impl Into<String>) {
        let mut failing = self.failing.write().unwrap_or_else(|e| e.into_inner());
        failing.insert(name.to_owned(), error.into());
    }

    /// Records that the check `name` passes.
    pub fn pass(&self, name: &str) {
        let mut failing = self.failing.write().unwrap_or_else(|e| e.into_inner());
        failing.remove(name);
    }

    /// The failing checks and their errors; empty when healthy.
    pub fn failing(&self) -> BTreeMap<String, String> {
        self.failing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether every check passes.
    pub fn is_healthy(&self) -> bool {
        self.failing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}
