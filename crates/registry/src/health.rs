//! Health checks while the registry serves: registry:2's `health.storagedriver`, which looks at
//! the root of the storage on a schedule and marks the registry unhealthy after enough failures
//! in a row (`GET /v2/` then answers 503, `/debug/health` names the check).

use std::sync::Arc;
use std::time::Duration;

use registry_http::Health;
use registry_storage::{StorageDriver, StoragePath};

/// Checking the storage driver on a schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageHealthCheck {
    /// How often the storage's root is looked at; also how long one look may take.
    pub interval: Duration,
    /// Failures in a row before the check fails (at least 1); one success makes it pass again.
    pub threshold: u32,
}

/// The check's name, as registry:2 names it: `storagedriver_<driver>`.
pub fn storage_check_name(driver: &dyn StorageDriver) -> String {
    format!("storagedriver_{}", driver.name())
}

/// Checks `driver` on `check`'s schedule, recording the outcome in `health`, until dropped. The
/// first look is at once. Nothing at the root counts as healthy (a new, empty store).
pub(crate) async fn check_storage_periodically(
    driver: Arc<dyn StorageDriver>,
    check: StorageHealthCheck,
    health: Arc<Health>,
) {
    let name = storage_check_name(driver.as_ref());
    let threshold = check.threshold.max(1);
    let mut failures: u32 = 0;
    loop {
        let looked = tokio::time::timeout(check.interval, driver.stat(&StoragePath::root())).await;
        let error = match looked {
            Ok(Ok(_)) => None,
            Ok(Err(error)) if error.is_not_found() => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {:?}", check.interval)),
        };
        match error {
            None => {
                if failures >= threshold {
                    tracing::info!(check = name, "health check passes again");
                }
                failures = 0;
                health.pass(&name);
            }
            Some(error) => {
                failures = failures.saturating_add(1);
                if failures == threshold {
                    tracing::error!(
                        check = name,
                        %error,
                        "health check failed {failures} times in a row: GET /v2/ answers 503 until it passes"
                    );
                } else {
                    tracing::warn!(check = name, %error, "health check failed ({failures} in a row)");
                }
                if failures >= threshold {
                    health.fail(&name, error);
                }
            }
        }
        tokio::time::sleep(check.interval).await;
    }
}
