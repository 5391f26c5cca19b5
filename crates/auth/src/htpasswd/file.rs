//! The htpasswd file format: reading a file of bcrypt entries and writing new entries.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The bcrypt cost [`hash_password`] callers should use when the user does not choose one.
///
/// Apache's `htpasswd -B` defaults to 5 and registry:2's documentation uses that default
/// (`htpasswd -Bbn`). We pick 10: about 67 ms a verification on our reference machine, 32 times
/// the work of cost 5 for someone who steals the file, and affordable because a verified
/// credential is cached, so a client pays it once per process rather than once per request.
pub const DEFAULT_COST: u32 = 10;

/// The lowest and highest costs bcrypt defines.
const COSTS: std::ops::RangeInclusive<u32> = 4..=31;

/// bcrypt reads at most this many bytes of a password.
const MAX_PASSWORD_BYTES: usize = 72;

/// The bcrypt prefixes we accept: those Apache, Go (registry:2) and OpenBSD write. `$2x$` (the
/// flawed pre-2011 variant) is refused.
const BCRYPT_PREFIXES: [&str; 3] = ["$2y$", "$2a$", "$2b$"];

/// A file modified this recently may be modified again within the file system's timestamp
/// granularity without its metadata changing, so it is re-read at the next check even when its
/// metadata looks the same.
const SETTLE_TIME: Duration = Duration::from_secs(2);

/// Why an htpasswd file, or a new entry for one, was refused.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HtpasswdError {
    /// The file could not be read.
    #[error("cannot read the htpasswd file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<io::Error>,
    },
    /// A line that is not `user:hash`.
    #[error(
        "htpasswd file {}, line {line}: expected `user:hash`, with a user name, a colon and a \
         bcrypt hash (create entries with `registryd htpasswd -B USER`)",
        path.display()
    )]
    MalformedLine {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// An entry whose password is hashed with something other than bcrypt.
    #[error(
        "htpasswd file {}, line {line}: the password of user {user:?} is hashed with {scheme}, \
         which registryd does not accept, so hash it with bcrypt instead \
         (`registryd htpasswd -B {user}` or Apache's `htpasswd -B`)",
        path.display()
    )]
    NotBcrypt {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// The user the entry is for.
        user: String,
        /// What the hash looks like instead.
        scheme: &'static str,
    },
    /// A bcrypt entry that cannot be used.
    #[error(
        "htpasswd file {}, line {line}: the bcrypt hash of user {user:?} is invalid ({reason}), \
         so hash the password again with `registryd htpasswd -B {user}`",
        path.display()
    )]
    InvalidBcrypt {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// The user the entry is for.
        user: String,
        /// What is wrong with the hash (never the hash itself).
        reason: String,
    },
    /// A user with two entries, which would leave it unclear which password is meant.
    #[error(
        "htpasswd file {}, line {line}: user {user:?} already has an entry on line {first_line}, \
         so keep only one of them",
        path.display()
    )]
    DuplicateUser {
        /// The file.
        path: PathBuf,
        /// The line of the second entry, from 1.
        line: usize,
        /// The user.
        user: String,
        /// The line of the first entry.
        first_line: usize,
    },
    /// A user name that cannot be written to an htpasswd file.
    #[error("the htpasswd user name {user:?} is not usable because {reason}")]
    InvalidUser {
        /// The name.
        user: String,
        /// Why.
        reason: &'static str,
    },
    /// A bcrypt cost outside 4..=31.
    #[error("bcrypt cost {cost} is out of range; it must be between 4 and 31")]
    InvalidCost {
        /// The cost asked for.
        cost: u32,
    },
    /// A password longer than bcrypt reads.
    #[error(
        "the password is {length} bytes long but bcrypt uses only the first 72, so choose a \
         shorter one"
    )]
    PasswordTooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// Hashing failed (no randomness for the salt).
    #[error("cannot hash the password: {reason}")]
    Hash {
        /// Why.
        reason: String,
    },
}

impl HtpasswdError {
    fn read(path: &Path, source: io::Error) -> HtpasswdError {
        HtpasswdError::Read {
            path: path.to_owned(),
            source: Arc::new(source),
        }
    }
}

/// A bcrypt hash of `password` in the `$2y$` form Apache's `htpasswd -B` writes and registry:2
/// accepts, with a random salt. `cost` is bcrypt's (4 to 31; each step doubles the work, see
/// [`DEFAULT_COST`]). Passwords longer than the 72 bytes bcrypt reads are refused rather than
/// silently truncated.
pub fn hash_password(password: &str, cost: u32) -> Result<String, HtpasswdError> {
    if !COSTS.contains(&cost) {
        return Err(HtpasswdError::InvalidCost { cost });
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(HtpasswdError::PasswordTooLong {
            length: password.len(),
        });
    }
    let parts = bcrypt::hash_with_result(password, cost).map_err(|error| HtpasswdError::Hash {
        reason: error.to_string(),
    })?;
    Ok(parts.format_for_version(bcrypt::Version::TwoY))
}

/// A line for an htpasswd file, `user:$2y$...`, without a line break: `user` with
/// [`hash_password`]`(password, cost)`. Refuses user names the file cannot hold: empty, with a
/// `:`, a line break or another control character, starting with `#` (a comment), or with white
/// space at either end (dropped when the file is read).
pub fn entry_line(user: &str, password: &str, cost: u32) -> Result<String, HtpasswdError> {
    check_user(user)?;
    Ok(format!("{user}:{}", hash_password(password, cost)?))
}

fn check_user(user: &str) -> Result<(), HtpasswdError> {
    let reason = if user.is_empty() {
        "it is empty"
    } else if user.contains(':') {
        "it contains ':', which separates the user from the hash"
    } else if user.chars().any(char::is_control) {
        "it contains a line break or another control character"
    } else if user.starts_with('#') {
        "it starts with '#', which marks a comment"
    } else if user.trim() != user {
        "it starts or ends with white space, which is dropped when the file is read"
    } else {
        return Ok(());
    };
    Err(HtpasswdError::InvalidUser {
        user: user.to_owned(),
        reason,
    })
}

/// What identifies one version of the file: if any of it changes, the file is read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    /// Whether the file was last modified long enough ago that a later change must show in
    /// this metadata.
    settled: bool,
}

impl Stamp {
    pub(super) fn of(metadata: &fs::Metadata) -> Stamp {
        Stamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
            settled: metadata.modified().is_ok_and(is_settled),
        }
    }

    /// Whether a file with this stamp may differ from one with `earlier`.
    pub(super) fn differs_from(&self, earlier: &Stamp) -> bool {
        self != earlier || !earlier.settled
    }
}

fn is_settled(modified: SystemTime) -> bool {
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age >= SETTLE_TIME)
}

/// The users of one version of the file.
#[derive(Debug)]
pub(super) struct Users {
    /// User name -> bcrypt hash.
    pub(super) hashes: HashMap<String, Arc<str>>,
    /// A valid bcrypt hash no password matches, of the entries' median cost: verified for
    /// unknown users so that they take as long as known ones.
    pub(super) dummy: Arc<str>,
}

/// Reads the file and the stamp of what was read. Blocking.
pub(super) fn read(path: &Path) -> Result<(String, Stamp), HtpasswdError> {
    let mut file = fs::File::open(path).map_err(|error| HtpasswdError::read(path, error))?;
    // The stamp of the open file, not of the path: if the file is replaced while we read, the
    // next check sees a different stamp and reads it again.
    let stamp = Stamp::of(
        &file
            .metadata()
            .map_err(|error| HtpasswdError::read(path, error))?,
    );
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|error| HtpasswdError::read(path, error))?;
    Ok((text, stamp))
}

/// Parses the file's text: `user:hash` lines, blank lines and `#` comments, each line trimmed of
/// white space as registry:2 does. Only bcrypt hashes are accepted.
pub(super) fn parse(path: &Path, text: &str) -> Result<Users, HtpasswdError> {
    let mut hashes = HashMap::new();
    let mut lines_of_users: HashMap<&str, usize> = HashMap::new();
    let mut costs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':').filter(|(user, _)| !user.is_empty()) else {
            return Err(HtpasswdError::MalformedLine {
                path: path.to_owned(),
                line: number,
            });
        };
        let cost = bcrypt_cost(hash).map_err(|refusal| match refusal {
            Refusal::NotBcrypt(scheme) => HtpasswdError::NotBcrypt {
                path: path.to_owned(),
                line: number,
                user: user.to_owned(),
                scheme,
            },
            Refusal::Invalid(reason) => HtpasswdError::InvalidBcrypt {
                path: path.to_owned(),
                line: number,
                user: user.to_owned(),
                reason,
            },
        })?;
        if let Some(&first_line) = lines_of_users.get(user) {
            return Err(HtpasswdError::DuplicateUser {
                path: path.to_owned(),
                line: number,
                user: user.to_owned(),
                first_line,
            });
        }
        lines_of_users.insert(user, number);
        hashes.insert(user.to_owned(), Arc::from(hash));
        costs.push(cost);
    }
    costs.sort_unstable();
    let cost = costs.get(costs.len() / 2).copied().unwrap_or(DEFAULT_COST);
    Ok(Users {
        hashes,
        dummy: dummy_hash(cost).into(),
    })
}

/// A syntactically valid bcrypt hash of `cost` whose digest is all zero bits: verifying a
/// password against it costs as much as against a real hash of that cost and never succeeds
/// (that would take a password whose bcrypt output is all zeros).
fn dummy_hash(cost: u32) -> String {
    // '.' is the digit for 0 in bcrypt's base64 alphabet: 22 for the salt, 31 for the digest.
    format!("$2y${cost:02}${}", ".".repeat(53))
}

enum Refusal {
    NotBcrypt(&'static str),
    Invalid(String),
}

/// The cost of a usable bcrypt hash.
fn bcrypt_cost(hash: &str) -> Result<u32, Refusal> {
    let Some(rest) = BCRYPT_PREFIXES
        .iter()
        .find_map(|prefix| hash.strip_prefix(prefix))
    else {
        return Err(Refusal::NotBcrypt(scheme_of(hash)));
    };
    if hash.len() != 60 || !hash.is_ascii() {
        return Err(Refusal::Invalid(
            "a bcrypt hash is 60 characters long".to_owned(),
        ));
    }
    let cost = match rest.as_bytes() {
        [tens @ b'0'..=b'9', ones @ b'0'..=b'9', b'$', ..] => {
            u32::from(tens - b'0') * 10 + u32::from(ones - b'0')
        }
        _ => {
            return Err(Refusal::Invalid(
                "the cost must be two digits followed by '$'".to_owned(),
            ));
        }
    };
    if !COSTS.contains(&cost) {
        return Err(Refusal::Invalid(format!(
            "its cost {cost} is outside bcrypt's range of 4 to 31"
        )));
    }
    hash.parse::<bcrypt::HashParts>().map_err(|_| {
        Refusal::Invalid("its salt or digest is not valid bcrypt base64".to_owned())
    })?;
    Ok(cost)
}

/// A name for a password hash that is not bcrypt, for the error message.
fn scheme_of(hash: &str) -> &'static str {
    const SCHEMES: [(&str, &str); 7] = [
        ("$apr1$", "Apache MD5 ($apr1$)"),
        ("{SHA}", "SHA-1 ({SHA})"),
        ("$2x$", "the flawed bcrypt variant $2x$"),
        ("$1$", "MD5-crypt ($1$)"),
        ("$5$", "SHA-256-crypt ($5$)"),
        ("$6$", "SHA-512-crypt ($6$)"),
        ("$y$", "yescrypt ($y$)"),
    ];
    if hash.is_empty() {
        return "nothing (the hash is empty)";
    }
    SCHEMES
        .iter()
        .find(|(prefix, _)| hash.starts_with(prefix))
        .map_or("crypt or plain text", |(_, scheme)| scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_is_valid_bcrypt_that_no_password_matches() {
        for cost in [4, 10, 31] {
            let dummy = dummy_hash(cost);
            assert_eq!(bcrypt_cost(&dummy).ok(), Some(cost), "{dummy}");
        }
        assert_eq!(bcrypt::verify("", &dummy_hash(4)).ok(), Some(false));
        assert_eq!(bcrypt::verify("password", &dummy_hash(4)).ok(), Some(false));
    }

    #[test]
    fn dummy_hash_has_the_median_cost_of_the_entries() {
        let text = [
            format!("a:$2y$04${}", ".".repeat(53)),
            format!("b:$2y$11${}", ".".repeat(53)),
            format!("c:$2b$12${}", ".".repeat(53)),
        ]
        .join("\n");
        let users = parse(Path::new("htpasswd"), &text).expect("parses");
        assert!(users.dummy.starts_with("$2y$11$"), "{}", users.dummy);
        let empty = parse(Path::new("htpasswd"), "# nobody yet\n").expect("parses");
        assert!(empty.dummy.starts_with("$2y$10$"), "{}", empty.dummy);
    }

    #[test]
    fn just_modified_files_are_not_settled() {
        assert!(!is_settled(SystemTime::now()));
        assert!(!is_settled(SystemTime::now() + Duration::from_secs(60)));
        assert!(is_settled(SystemTime::now() - Duration::from_secs(60)));
    }

    #[test]
    fn unsettled_stamp_differs_even_from_itself() {
        let stamp = Stamp {
            device: 1,
            inode: 2,
            size: 3,
            modified: (4, 5),
            changed: (6, 7),
            settled: false,
        };
        assert!(stamp.differs_from(&stamp));
        let settled = Stamp {
            settled: true,
            ..stamp
        };
        assert!(!settled.differs_from(&settled));
        assert!(Stamp { size: 4, ..settled }.differs_from(&settled));
    }
}
