//! What the S3 driver is configured with, and the object_store client built from it.

use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, RetryConfig};

use crate::connector::HyperConnector;

/// S3's smallest part of a multipart upload (all but the last part).
pub const MIN_CHUNK_SIZE: u64 = 5 << 20;

/// registry:2's default part size for uploads (`chunksize`).
pub const DEFAULT_CHUNK_SIZE: u64 = 10 << 20;

/// S3's largest part.
const MAX_CHUNK_SIZE: u64 = 5 << 30;

/// How long a presigned redirect URL stays valid (registry:2's 20 minutes).
const REDIRECT_EXPIRY: Duration = Duration::from_secs(20 * 60);

/// The settings of an [`S3Driver`](crate::S3Driver): registry:2's `storage.s3` keys, typed.
///
/// Without `access_key` and `secret_key`, credentials come from the environment the way AWS's
/// tools find them: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, a web
/// identity token (`AWS_WEB_IDENTITY_TOKEN_FILE`, as on EKS), the container credentials endpoint
/// (ECS) or the instance profile (EC2's metadata service).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket, which must exist (`bucket`).
    pub bucket: String,
    /// The bucket's region (`region`), e.g. `us-east-1`.
    pub region: String,
    /// The endpoint of an S3-compatible service (`regionendpoint`), e.g. `http://minio:9000`;
    /// `None` for Amazon S3.
    pub endpoint: Option<String>,
    /// The access key (`accesskey`); with `secret_key`, overrides the environment.
    pub access_key: Option<String>,
    /// The secret key (`secretkey`).
    pub secret_key: Option<String>,
    /// A session token for temporary credentials (`sessiontoken`).
    pub session_token: Option<String>,
    /// HTTPS to the endpoint (`secure`, default true); false allows plain HTTP.
    pub secure: bool,
    /// Path-style addressing, `endpoint/bucket/key` (`forcepathstyle`); else virtual-hosted
    /// style, `bucket.endpoint/key`.
    pub force_path_style: bool,
    /// Server-side encryption (`encrypt`): with SSE-KMS under `kms_key_id` when given, else SSE-S3.
    pub encrypt: bool,
    /// The KMS key for `encrypt` (`keyid`).
    pub kms_key_id: Option<String>,
    /// The prefix every key starts with (`rootdirectory`), without leading or trailing `/`; empty
    /// for the bucket's root.
    pub root_directory: String,
    /// The size of the parts uploads are sent in (`chunksize`, at least 5 MiB, default 10 MiB): a
    /// writer holds up to one part in memory.
    pub chunk_size: u64,
    /// Whether [`StorageDriver::redirect_url`](registry_storage::StorageDriver::redirect_url)
    /// gives presigned URLs (the opposite of `storage.redirect.disable`).
    pub redirect: bool,
}

impl S3Options {
    /// Options for `bucket` in `region` with registry:2's defaults for everything else.
    pub fn new(bucket: impl Into<String>, region: impl Into<String>) -> S3Options {
        S3Options {
            bucket: bucket.into(),
            region: region.into(),
            endpoint: None,
            access_key: None,
            secret_key: None,
            session_token: None,
            secure: true,
            force_path_style: false,
            encrypt: false,
            kms_key_id: None,
            root_directory: String::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            redirect: true,
        }
    }

    /// How long redirect URLs are valid.
    pub(crate) fn redirect_expiry(&self) -> Duration {
        REDIRECT_EXPIRY
    }

    /// The object_store client these options describe.
    pub(crate) fn client(&self) -> Result<AmazonS3, OptionsError> {
        if self.bucket.is_empty() {
            return Err(OptionsError::Invalid("bucket is empty".to_owned()));
        }
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(OptionsError::Invalid(format!(
                "chunksize {} is outside S3's part sizes ({MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes)",
                self.chunk_size
            )));
        }
        if self.access_key.is_some() != self.secret_key.is_some() {
            return Err(OptionsError::Invalid(
                "accesskey and secretkey go together: give both or neither".to_owned(),
            ));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_allow_http(!self.secure)
            .with_virtual_hosted_style_request(!self.force_path_style)
            .with_http_connector(HyperConnector)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 4,
                retry_timeout: Duration::from_secs(60),
            });
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint_url(endpoint, self.secure));
        }
        if let (Some(access), Some(secret)) = (&self.access_key, &self.secret_key) {
            builder = builder
                .with_access_key_id(access)
                .with_secret_access_key(secret);
            if let Some(token) = &self.session_token {
                builder = builder.with_token(token);
            }
        }
        if self.encrypt {
            builder = match &self.kms_key_id {
                Some(key) => builder.with_sse_kms_encryption(key),
                None => {
                    let key: AmazonS3ConfigKey = "aws_server_side_encryption".parse().map_err(
                        |error: object_store::Error| OptionsError::Invalid(error.to_string()),
                    )?;
                    builder.with_config(key, "AES256")
                }
            };
        }
        builder
            .build()
            .map_err(|error| OptionsError::Invalid(error.to_string()))
    }
}

/// `endpoint` with a scheme: registry:2 accepts a bare `host:port` and picks the scheme from
/// `secure`.
fn endpoint_url(endpoint: &str, secure: bool) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.trim_end_matches('/').to_owned()
    } else {
        let scheme = if secure { "https" } else { "http" };
        format!("{scheme}://{}", endpoint.trim_end_matches('/'))
    }
}

/// Why an [`S3Driver`](crate::S3Driver) could not be made from its options.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// The options are wrong or incomplete; the text says which and how (`chunksize 1048576 is
    /// outside S3's part sizes ...`), naming the registry:2 key where there is one.
    #[error("S3 driver options: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_endpoint_gets_its_scheme_from_secure() {
        assert_eq!(endpoint_url("minio:9000", false), "http://minio:9000");
        assert_eq!(endpoint_url("minio:9000/", true), "https://minio:9000");
        assert_eq!(
            endpoint_url("http://127.0.0.1:9000", true),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn chunk_sizes_outside_s3_part_sizes_are_refused() {
        let mut options = S3Options::new("bucket", "us-east-1");
        options.chunk_size = MIN_CHUNK_SIZE - 1;
        let error = options.client().err().map(|error| error.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("chunksize")),
            "{error:?}"
        );
    }

    #[test]
    fn an_access_key_without_a_secret_is_refused() {
        let mut options = S3Options::new("bucket", "us-east-1");
        options.access_key = Some("key".to_owned());
        let error = options.client().err().map(|error| error.to_string());
        assert!(
            error.as_deref().is_some_and(|e| e.contains("secretkey")),
            "{error:?}"
        );
    }
}
