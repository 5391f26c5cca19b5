//! The vocabulary of an OCI registry: digests, repository names, tags, references, media types,
//! descriptors and manifests.
//!
//! Everything here is pure (no I/O, no async) and every type that comes from outside is
//! constructed only by parsing and validating, so code holding a [`Digest`], [`RepositoryName`],
//! [`Tag`] or [`Reference`] never checks it again. In particular none of them can contain `..`,
//! an absolute path or a stray `/`, which is what lets higher layers turn them into storage paths.
//!
//! Manifests are parsed from the exact bytes a client sent ([`parse_manifest`]) and never
//! re-serialized; their digest is the digest of those bytes.
//!
//! ```
//! use registry_model::{Digest, ManifestKind, Reference, RepositoryName, parse_manifest};
//!
//! let name: RepositoryName = "library/alpine".parse()?;
//! assert_eq!(name.components().count(), 2);
//! assert!("../etc".parse::<RepositoryName>().is_err());
//!
//! let bytes = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
//! let manifest = parse_manifest(bytes, Some("application/vnd.oci.image.index.v1+json"))?;
//! assert_eq!(manifest.kind, ManifestKind::OciImageIndex);
//!
//! let digest = Digest::sha256(bytes);
//! let reference: Reference = digest.as_str().parse()?;
//! assert_eq!(reference, Reference::Digest(digest));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod descriptor;
pub mod digest;
pub mod manifest;
pub mod media_type;
pub mod name;

pub use descriptor::{Descriptor, Platform};
pub use digest::{Digest, DigestAlgorithm, DigestError, Digester};
pub use manifest::{Manifest, ManifestError, ManifestKind, ReferenceRole, parse_manifest};
pub use media_type::*;
pub use name::{
    MAX_REPOSITORY_NAME_LEN, MAX_TAG_LEN, NameError, Reference, ReferenceError, RepositoryName,
    Tag, TagError,
};
