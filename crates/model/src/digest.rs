//! Content digests (`algorithm:hex`) and a streaming, resumable hasher.
//!
//! The image spec says a digest string "MUST match the following grammar":
//! `algorithm ":" encoded`, with `algorithm-component ::= [a-z0-9]+`,
//! `algorithm-separator ::= [+._-]` and `encoded ::= [a-zA-Z0-9=_-]+`. For the two algorithms
//! registryd supports it adds: "When the algorithm identifier is `sha256`, the encoded portion
//! MUST match `/[a-f0-9]{64}/`. Note that `[A-F]` MUST NOT be used here" (and the same with 128
//! characters for `sha512`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::block_api::{Sha256VarCore, Sha512VarCore};
use sha2::digest::common::BlockSizeUser;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};
use sha2::digest::typenum::Unsigned;
use sha2::{Digest as _, Sha256, Sha512};

/// A hash algorithm registryd can compute and verify.
///
/// The image spec: "Implementations MUST implement SHA-256 digest verification for use in
/// descriptors." SHA-512 is the other registered algorithm. Digests that use any other
/// algorithm are refused with [`DigestError::UnsupportedAlgorithm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// SHA-256: 64 lowercase hex characters. The default everywhere.
    Sha256,
    /// SHA-512: 128 lowercase hex characters.
    Sha512,
}

impl DigestAlgorithm {
    /// The algorithm identifier as it appears before the `:` of a digest: `"sha256"` or `"sha512"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// The exact number of hex characters in the encoded portion: 64 for SHA-256, 128 for SHA-512.
    pub fn hex_len(&self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha512 => 128,
        }
    }

    /// The one-byte code used for this algorithm in [`Digester::save_state`]'s header.
    fn state_code(self) -> u8 {
        match self {
            DigestAlgorithm::Sha256 => 1,
            DigestAlgorithm::Sha512 => 2,
        }
    }

    fn from_state_code(code: u8) -> Option<DigestAlgorithm> {
        match code {
            1 => Some(DigestAlgorithm::Sha256),
            2 => Some(DigestAlgorithm::Sha512),
            _ => None,
        }
    }
}

impl FromStr for DigestAlgorithm {
    type Err = DigestError;

    /// Parses exactly `"sha256"` or `"sha512"` (lowercase, as the grammar requires); any other
    /// name is [`DigestError::UnsupportedAlgorithm`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(DigestAlgorithm::Sha256),
            "sha512" => Ok(DigestAlgorithm::Sha512),
            other => Err(DigestError::UnsupportedAlgorithm {
                algorithm: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated content digest such as `sha256:6c3c62...9b3b`.
///
/// Holding a `Digest` proves the string is `algorithm:hex` with a supported algorithm and exactly
/// [`DigestAlgorithm::hex_len`] lowercase hex characters, so it is safe to use as a storage path
/// component. It is constructed only by parsing ([`FromStr`], [`Digest::new`], deserializing) or by
/// hashing ([`Digest::compute`], [`Digester::finalize`]). The full string is stored once, so
/// [`Digest::as_str`] and [`Digest::hex`] are free; ordering is the ordering of that string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    // Field order matters: the derived `Ord` compares `value` first, which is the string order.
    value: String,
    algorithm: DigestAlgorithm,
}

impl Digest {
    /// Builds a digest from an algorithm and its encoded (hex) portion, which must be exactly
    /// `algorithm.hex_len()` characters of `[a-f0-9]`.
    pub fn new(algorithm: DigestAlgorithm, hex: &str) -> Result<Digest, DigestError> {
        let value = format!("{}:{hex}", algorithm.as_str());
        check_hex(algorithm, hex).map_err(|reason| DigestError::Invalid {
            digest: value.clone(),
            reason,
        })?;
        Ok(Digest { value, algorithm })
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The encoded portion: lowercase hex, without the `algorithm:` prefix.
    pub fn hex(&self) -> &str {
        // The prefix is the algorithm name and one ':' by construction.
        &self.value[self.algorithm.as_str().len() + 1..]
    }

    /// The full digest string, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The digest of `data` under `algorithm`.
    pub fn compute(algorithm: DigestAlgorithm, data: &[u8]) -> Digest {
        let mut digester = Digester::new(algorithm);
        digester.update(data);
        digester.finalize()
    }

    /// The SHA-256 digest of `data`; shorthand for
    /// `Digest::compute(DigestAlgorithm::Sha256, data)`.
    pub fn sha256(data: &[u8]) -> Digest {
        Digest::compute(DigestAlgorithm::Sha256, data)
    }

    /// Builds a digest from a hash output, which is valid by construction.
    fn from_hash_output(algorithm: DigestAlgorithm, output: &[u8]) -> Digest {
        let mut value = String::with_capacity(algorithm.as_str().len() + 1 + algorithm.hex_len());
        value.push_str(algorithm.as_str());
        value.push(':');
        value.push_str(&hex::encode(output));
        Digest { value, algorithm }
    }

    /// Validates `value` in place and keeps its allocation.
    fn parse_owned(value: String) -> Result<Digest, DigestError> {
        let invalid = |value: String, reason: &'static str| DigestError::Invalid {
            digest: value,
            reason,
        };
        let Some((algorithm, encoded)) = value.split_once(':') else {
            return Err(invalid(value, "a digest must be `algorithm:encoded`"));
        };
        if !is_algorithm_grammar(algorithm) {
            return Err(invalid(
                value,
                "the algorithm must match [a-z0-9]+([+._-][a-z0-9]+)*",
            ));
        }
        if !is_encoded_grammar(encoded) {
            return Err(invalid(
                value,
                "the encoded part must match [a-zA-Z0-9=_-]+",
            ));
        }
        let algorithm = algorithm.parse::<DigestAlgorithm>()?;
        match check_hex(algorithm, encoded) {
            Ok(()) => Ok(Digest { value, algorithm }),
            Err(reason) => Err(invalid(value, reason)),
        }
    }
}

/// `algorithm ::= algorithm-component (algorithm-separator algorithm-component)*`.
fn is_algorithm_grammar(algorithm: &str) -> bool {
    let is_component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    algorithm.split(['+', '.', '_', '-']).all(is_component)
}

/// `encoded ::= [a-zA-Z0-9=_-]+`.
fn is_encoded_grammar(encoded: &str) -> bool {
    !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

/// The registered algorithms' rule: exactly `hex_len` characters of `[a-f0-9]`.
fn check_hex(algorithm: DigestAlgorithm, hex: &str) -> Result<(), &'static str> {
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("the encoded part must be lowercase hex ([a-f0-9]); [A-F] MUST NOT be used");
    }
    if hex.len() != algorithm.hex_len() {
        return Err(match algorithm {
            DigestAlgorithm::Sha256 => "a sha256 digest must have exactly 64 hex characters",
            DigestAlgorithm::Sha512 => "a sha512 digest must have exactly 128 hex characters",
        });
    }
    Ok(())
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Parses `algorithm:hex`. A string that does not follow the digest grammar, uses uppercase
    /// hex or has the wrong length is [`DigestError::Invalid`]; a grammatical digest whose
    /// algorithm is neither `sha256` nor `sha512` is [`DigestError::UnsupportedAlgorithm`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse_owned(s.to_owned())
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;

    /// Same rules as [`FromStr`], reusing the string's allocation.
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Digest::parse_owned(value)
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> String {
        digest.value
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// Why a digest, an algorithm name or a saved hash state was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestError {
    /// The string is not a well-formed digest (no `:`, bad grammar, uppercase hex, wrong length).
    #[error("invalid digest {digest:?}: {reason}")]
    Invalid {
        /// The string that was refused.
        digest: String,
        /// What is wrong with it, in one phrase.
        reason: &'static str,
    },
    /// The digest is well-formed but uses an algorithm other than `sha256` or `sha512`.
    #[error("unsupported digest algorithm {algorithm:?}: registryd supports sha256 and sha512")]
    UnsupportedAlgorithm {
        /// The algorithm name that was refused.
        algorithm: String,
    },
    /// Bytes given to [`Digester::restore_state`] are not a state saved by
    /// [`Digester::save_state`].
    #[error("invalid saved hash state")]
    InvalidState,
}

#[derive(Clone)]
enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// A streaming hasher: feed bytes with [`update`](Digester::update), get the [`Digest`] with
/// [`finalize`](Digester::finalize).
///
/// The state of a hash in progress can be saved ([`save_state`](Digester::save_state)) and
/// restored later, in this process or another, so a chunked upload can continue hashing where
/// it left off without re-reading what it already stored. Memory use is constant.
#[derive(Clone)]
pub struct Digester {
    hasher: Hasher,
    bytes_hashed: u64,
}

/// Version of the [`Digester::save_state`] format.
const STATE_VERSION: u8 = 1;
/// Header: version (1 byte), algorithm code (1 byte), bytes hashed (u64 little-endian).
const STATE_HEADER_LEN: usize = 10;

impl Digester {
    /// A hasher for `algorithm` that has seen no bytes.
    pub fn new(algorithm: DigestAlgorithm) -> Digester {
        let hasher = match algorithm {
            DigestAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        };
        Digester {
            hasher,
            bytes_hashed: 0,
        }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> DigestAlgorithm {
        match self.hasher {
            Hasher::Sha256(_) => DigestAlgorithm::Sha256,
            Hasher::Sha512(_) => DigestAlgorithm::Sha512,
        }
    }

    /// Feeds `data` to the hash. Splitting input across calls never changes the result.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
        self.bytes_hashed = self.bytes_hashed.saturating_add(data.len() as u64);
    }

    /// How many bytes have been fed so far (including those fed before a save/restore).
    pub fn bytes_hashed(&self) -> u64 {
        self.bytes_hashed
    }

    /// The digest of all bytes fed so far.
    pub fn finalize(self) -> Digest {
        match self.hasher {
            Hasher::Sha256(h) => Digest::from_hash_output(DigestAlgorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_hash_output(DigestAlgorithm::Sha512, &h.finalize()),
        }
    }

    /// The digest of the bytes fed so far, leaving this hasher usable.
    pub fn current_digest(&self) -> Digest {
        self.clone().finalize()
    }

    /// Serializes the state of the hash in progress so it can be continued later with
    /// [`restore_state`](Digester::restore_state).
    ///
    /// The format is a 10-byte header (format version, algorithm, [`bytes_hashed`] as u64
    /// little-endian) followed by sha2 0.11's `SerializableState` encoding of the hasher. sha2
    /// promises that encoding is stable across 0.11.x releases. The state reveals the tail of the
    /// hashed data (at most one block), so store it as privately as the data itself.
    ///
    /// [`bytes_hashed`]: Digester::bytes_hashed
    pub fn save_state(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(STATE_HEADER_LEN + 256);
        bytes.push(STATE_VERSION);
        bytes.push(self.algorithm().state_code());
        bytes.extend_from_slice(&self.bytes_hashed.to_le_bytes());
        match &self.hasher {
            Hasher::Sha256(h) => bytes.extend_from_slice(&h.serialize()),
            Hasher::Sha512(h) => bytes.extend_from_slice(&h.serialize()),
        }
        bytes
    }

    /// Rebuilds a hasher from bytes produced by [`save_state`](Digester::save_state).
    ///
    /// Returns [`DigestError::InvalidState`] (and never panics) when the bytes are truncated,
    /// padded, of an unknown version or algorithm, rejected by sha2, or when the header's byte
    /// count disagrees with the hash state's own count of hashed blocks.
    pub fn restore_state(bytes: &[u8]) -> Result<Digester, DigestError> {
        let (header, state) = bytes
            .split_at_checked(STATE_HEADER_LEN)
            .ok_or(DigestError::InvalidState)?;
        let [version, code, count @ ..] = header else {
            return Err(DigestError::InvalidState);
        };
        if *version != STATE_VERSION {
            return Err(DigestError::InvalidState);
        }
        let algorithm = DigestAlgorithm::from_state_code(*code).ok_or(DigestError::InvalidState)?;
        let count: [u8; 8] = count.try_into().map_err(|_| DigestError::InvalidState)?;
        let bytes_hashed = u64::from_le_bytes(count);
        let hasher = match algorithm {
            DigestAlgorithm::Sha256 => {
                let hasher = deserialize_hasher::<Sha256>(state)?;
                check_block_count::<Sha256VarCore>(state, 8, bytes_hashed)?;
                Hasher::Sha256(hasher)
            }
            DigestAlgorithm::Sha512 => {
                let hasher = deserialize_hasher::<Sha512>(state)?;
                check_block_count::<Sha512VarCore>(state, 16, bytes_hashed)?;
                Hasher::Sha512(hasher)
            }
        };
        Ok(Digester {
            hasher,
            bytes_hashed,
        })
    }
}

fn deserialize_hasher<H: SerializableState>(state: &[u8]) -> Result<H, DigestError> {
    let state = <&SerializedState<H>>::try_from(state).map_err(|_| DigestError::InvalidState)?;
    H::deserialize(state).map_err(|_| DigestError::InvalidState)
}

/// Checks that `bytes_hashed` agrees with a serialized hasher whose core is `Core`, so a restored
/// [`Digester::bytes_hashed`] can be trusted.
///
/// sha2 0.11 lays a hasher's state out as the core's state (chaining words, then the number of
/// compressed blocks as a little-endian integer `counter_len` bytes wide) followed by the block
/// buffer (one byte holding how many bytes are buffered, then the buffered bytes). The round-trip
/// tests cover this layout, so a change in sha2 fails them rather than going unnoticed.
fn check_block_count<Core>(
    state: &[u8],
    counter_len: usize,
    bytes_hashed: u64,
) -> Result<(), DigestError>
where
    Core: SerializableState + BlockSizeUser,
{
    let core_len = Core::SerializedStateSize::USIZE;
    let counter_bytes = core_len
        .checked_sub(counter_len)
        .and_then(|start| state.get(start..core_len))
        .ok_or(DigestError::InvalidState)?;
    let mut counter = [0u8; 16];
    counter
        .get_mut(..counter_bytes.len())
        .ok_or(DigestError::InvalidState)?
        .copy_from_slice(counter_bytes);
    let blocks = u128::from_le_bytes(counter);
    let buffered = state
        .get(core_len)
        .copied()
        .ok_or(DigestError::InvalidState)?;
    let total = blocks
        .checked_mul(Core::BlockSize::U64.into())
        .and_then(|n| n.checked_add(u128::from(buffered)))
        .ok_or(DigestError::InvalidState)?;
    if total == u128::from(bytes_hashed) {
        Ok(())
    } else {
        Err(DigestError::InvalidState)
    }
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("algorithm", &self.algorithm())
            .field("bytes_hashed", &self.bytes_hashed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC_SHA512: &str = "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                              2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

    fn algorithms() -> impl Strategy<Value = DigestAlgorithm> {
        prop_oneof![Just(DigestAlgorithm::Sha256), Just(DigestAlgorithm::Sha512)]
    }

    fn state_len<H: SerializableState>() -> usize {
        H::SerializedStateSize::USIZE
    }

    fn is_invalid(result: Result<Digest, DigestError>) -> bool {
        matches!(result, Err(DigestError::Invalid { .. }))
    }

    #[test]
    fn sha256_of_empty_input_is_the_well_known_digest() {
        let digest = Digest::sha256(b"");
        assert_eq!(digest.as_str(), EMPTY_SHA256);
        assert_eq!(digest.algorithm(), DigestAlgorithm::Sha256);
        assert_eq!(digest.hex(), &EMPTY_SHA256[7..]);
    }

    #[test]
    fn sha512_of_abc_is_the_fips_test_vector() {
        assert_eq!(
            Digest::compute(DigestAlgorithm::Sha512, b"abc").as_str(),
            ABC_SHA512
        );
    }

    #[test]
    fn parsed_digest_keeps_the_exact_string() {
        for s in [EMPTY_SHA256, ABC_SHA512] {
            let digest: Digest = s.parse().unwrap();
            assert_eq!(digest.as_str(), s);
            assert_eq!(digest.to_string(), s);
            assert_eq!(format!("{}:{}", digest.algorithm(), digest.hex()), s);
        }
    }

    #[test]
    fn uppercase_hex_is_invalid() {
        let upper = format!("sha256:{}", EMPTY_SHA256[7..].to_uppercase());
        assert!(is_invalid(upper.parse()));
        let one_upper = EMPTY_SHA256.replacen('e', "E", 1);
        assert!(is_invalid(one_upper.parse()));
    }

    #[test]
    fn wrong_length_is_invalid() {
        assert!(is_invalid(EMPTY_SHA256[..EMPTY_SHA256.len() - 1].parse()));
        assert!(is_invalid(format!("{EMPTY_SHA256}0").parse()));
        assert!(is_invalid(format!("sha512:{}", &EMPTY_SHA256[7..]).parse()));
        assert!(is_invalid("sha256:".parse()));
    }

    #[test]
    fn missing_colon_is_invalid() {
        assert!(is_invalid(EMPTY_SHA256[7..].parse()));
        assert!(is_invalid("".parse()));
    }

    #[test]
    fn ungrammatical_algorithm_is_invalid_not_unsupported() {
        assert!(is_invalid(format!("SHA256:{}", &EMPTY_SHA256[7..]).parse()));
        assert!(is_invalid(format!(":{}", &EMPTY_SHA256[7..]).parse()));
        assert!(is_invalid(format!("sha+:{}", &EMPTY_SHA256[7..]).parse()));
        assert!(is_invalid("sha256:abc/def".parse()));
    }

    #[test]
    fn unknown_algorithms_are_unsupported() {
        let blake3 = format!("blake3:{}", &EMPTY_SHA256[7..]);
        assert_eq!(
            blake3.parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm {
                algorithm: "blake3".to_owned()
            })
        );
        assert!(matches!(
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn algorithm_names_are_exact_lowercase() {
        assert_eq!("sha256".parse(), Ok(DigestAlgorithm::Sha256));
        assert_eq!("sha512".parse(), Ok(DigestAlgorithm::Sha512));
        for name in ["SHA256", "Sha512", "sha384", "", " sha256"] {
            assert!(matches!(
                name.parse::<DigestAlgorithm>(),
                Err(DigestError::UnsupportedAlgorithm { .. })
            ));
        }
        assert_eq!(DigestAlgorithm::Sha512.to_string(), "sha512");
        assert_eq!(DigestAlgorithm::Sha256.hex_len(), 64);
        assert_eq!(DigestAlgorithm::Sha512.hex_len(), 128);
    }

    #[test]
    fn new_validates_the_hex_part() {
        let hex = &EMPTY_SHA256[7..];
        assert_eq!(
            Digest::new(DigestAlgorithm::Sha256, hex).unwrap(),
            Digest::sha256(b"")
        );
        assert!(is_invalid(Digest::new(DigestAlgorithm::Sha512, hex)));
        assert!(is_invalid(Digest::new(
            DigestAlgorithm::Sha256,
            &hex.to_uppercase()
        )));
        assert!(is_invalid(Digest::new(DigestAlgorithm::Sha256, "")));
    }

    #[test]
    fn digest_serializes_as_its_string_and_deserializing_validates() {
        let digest = Digest::sha256(b"");
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{EMPTY_SHA256}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        assert!(serde_json::from_str::<Digest>("\"sha256:abc\"").is_err());
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }

    #[test]
    fn digests_order_like_their_strings() {
        let mut digests: Vec<Digest> = (0u8..20).map(|i| Digest::sha256(&[i])).collect();
        digests.push(Digest::compute(DigestAlgorithm::Sha512, b""));
        let mut strings: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
        digests.sort();
        strings.sort();
        let sorted: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
        assert_eq!(sorted, strings);
    }

    #[test]
    fn digester_counts_bytes_and_survives_restore() {
        let mut digester = Digester::new(DigestAlgorithm::Sha256);
        digester.update(&[7; 100]);
        let mut restored = Digester::restore_state(&digester.save_state()).unwrap();
        assert_eq!(restored.bytes_hashed(), 100);
        assert_eq!(restored.algorithm(), DigestAlgorithm::Sha256);
        restored.update(&[7; 50]);
        assert_eq!(restored.bytes_hashed(), 150);
        assert_eq!(restored.current_digest(), Digest::sha256(&[7; 150]));
        assert_eq!(restored.finalize(), Digest::sha256(&[7; 150]));
    }

    #[test]
    fn restore_state_rejects_truncated_padded_and_foreign_states() {
        for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let mut digester = Digester::new(algorithm);
            digester.update(&[1; 300]);
            let state = digester.save_state();
            assert!(Digester::restore_state(&state).is_ok());

            let truncated = &state[..state.len() - 1];
            assert_eq!(
                Digester::restore_state(truncated).unwrap_err(),
                DigestError::InvalidState
            );
            let mut padded = state.clone();
            padded.push(0);
            assert!(Digester::restore_state(&padded).is_err());
            let mut version = state.clone();
            version[0] = 99;
            assert!(Digester::restore_state(&version).is_err());
            let mut unknown_algorithm = state.clone();
            unknown_algorithm[1] = 0;
            assert!(Digester::restore_state(&unknown_algorithm).is_err());
            let mut other_algorithm = state.clone();
            other_algorithm[1] = if algorithm == DigestAlgorithm::Sha256 {
                2
            } else {
                1
            };
            assert!(Digester::restore_state(&other_algorithm).is_err());
        }
        assert!(Digester::restore_state(&[]).is_err());
    }

    #[test]
    fn restore_state_rejects_a_byte_count_that_disagrees_with_the_hash() {
        let mut digester = Digester::new(DigestAlgorithm::Sha256);
        digester.update(&[1; 300]);
        let mut state = digester.save_state();
        state[2..10].copy_from_slice(&301u64.to_le_bytes());
        assert_eq!(
            Digester::restore_state(&state).unwrap_err(),
            DigestError::InvalidState
        );
    }

    #[test]
    fn digester_debug_shows_progress_not_data() {
        let mut digester = Digester::new(DigestAlgorithm::Sha512);
        digester.update(b"secret");
        let debug = format!("{digester:?}");
        assert!(debug.contains("Sha512") && debug.contains('6'));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn valid_digests_round_trip(algorithm in algorithms(), hex in "[a-f0-9]{128}") {
            let hex = &hex[..algorithm.hex_len()];
            let s = format!("{algorithm}:{hex}");
            let digest: Digest = s.parse().unwrap();
            prop_assert_eq!(digest.as_str(), s.as_str());
            prop_assert_eq!(digest.hex(), hex);
            prop_assert_eq!(digest.algorithm(), algorithm);
            prop_assert_eq!(Digest::new(algorithm, hex).unwrap(), digest);
        }

        #[test]
        fn wrong_length_or_uppercase_hex_is_rejected(
            algorithm in algorithms(),
            len in 0usize..200,
            upper_at in any::<prop::sample::Index>(),
            hex in "[a-f0-9]{128}",
        ) {
            let good = &hex[..algorithm.hex_len()];
            if len != algorithm.hex_len() {
                let wrong: String = hex.chars().cycle().take(len).collect();
                let wrong = format!("{algorithm}:{wrong}");
                prop_assert!(is_invalid(wrong.parse()));
            }
            let mut upper = good.to_owned().into_bytes();
            let at = upper_at.index(upper.len());
            upper[at] = b"ABCDEF"[at % 6];
            let upper = String::from_utf8(upper).unwrap();
            let upper = format!("{algorithm}:{upper}");
            prop_assert!(is_invalid(upper.parse()));
        }

        #[test]
        fn arbitrary_strings_never_panic_and_accepted_ones_round_trip(
            s in "\\PC{0,80}|sha(256|512):[a-fA-F0-9]{60,130}",
        ) {
            if let Ok(digest) = s.parse::<Digest>() {
                prop_assert_eq!(digest.as_str(), s.as_str());
            }
        }

        #[test]
        fn incremental_hashing_equals_one_shot(
            algorithm in algorithms(),
            data in prop::collection::vec(any::<u8>(), 0..1200),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut digester = Digester::new(algorithm);
            let mut start = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                digester.update(&data[start..cut]);
                start = cut;
            }
            prop_assert_eq!(digester.bytes_hashed(), data.len() as u64);
            prop_assert_eq!(digester.finalize(), Digest::compute(algorithm, &data));
        }

        #[test]
        fn save_and_restore_at_any_split_point_equals_one_shot(
            algorithm in algorithms(),
            data in prop::collection::vec(any::<u8>(), 0..1200),
            split in any::<prop::sample::Index>(),
        ) {
            let split = split.index(data.len() + 1);
            let mut first = Digester::new(algorithm);
            first.update(&data[..split]);
            let state = first.save_state();
            let mut second = Digester::restore_state(&state).unwrap();
            prop_assert_eq!(second.bytes_hashed(), split as u64);
            prop_assert_eq!(second.save_state(), state);
            second.update(&data[split..]);
            prop_assert_eq!(second.finalize(), Digest::compute(algorithm, &data));
        }

        #[test]
        fn restore_state_on_random_bytes_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = Digester::restore_state(&bytes);
        }

        #[test]
        fn restore_state_on_random_state_after_a_valid_header_never_panics(
            algorithm in algorithms(),
            bytes_hashed in any::<u64>(),
            state in prop::collection::vec(any::<u8>(), 256),
        ) {
            let len = match algorithm {
                DigestAlgorithm::Sha256 => state_len::<Sha256>(),
                DigestAlgorithm::Sha512 => state_len::<Sha512>(),
            };
            let mut bytes = vec![STATE_VERSION, algorithm.state_code()];
            bytes.extend_from_slice(&bytes_hashed.to_le_bytes());
            bytes.extend_from_slice(&state[..len]);
            if let Ok(digester) = Digester::restore_state(&bytes) {
                prop_assert_eq!(digester.bytes_hashed(), bytes_hashed);
                let _ = digester.finalize();
            }
        }

        #[test]
        fn restore_state_on_corrupted_states_never_panics(
            algorithm in algorithms(),
            data in prop::collection::vec(any::<u8>(), 0..400),
            at in any::<prop::sample::Index>(),
            flip in 1u8..,
        ) {
            let mut digester = Digester::new(algorithm);
            digester.update(&data);
            let mut state = digester.save_state();
            let at = at.index(state.len());
            state[at] ^= flip;
            if let Ok(restored) = Digester::restore_state(&state) {
                let _ = restored.finalize();
            }
        }
    }
}
