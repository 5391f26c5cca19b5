use std::cell::Cell;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::*;

/// bcrypt's lowest cost, to keep the tests fast.
const COST: u32 = 4;

/// An htpasswd file in a temporary directory. Every version of it is written next to it and
/// renamed into place, with a modification time in the past (one second later each time), as a
/// careful administrator would: its metadata always changes, and it is never "just written".
struct Fixture {
    dir: tempfile::TempDir,
    path: PathBuf,
    generation: Cell<u64>,
}

impl Fixture {
    fn new(lines: &[String]) -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("htpasswd");
        let fixture = Fixture {
            dir,
            path,
            generation: Cell::new(0),
        };
        fixture.write(lines);
        fixture
    }

    fn write(&self, lines: &[String]) {
        let staged = self.dir.path().join("htpasswd.new");
        fs::write(&staged, lines.join("\n") + "\n").expect("write");
        self.age(&staged);
        fs::rename(&staged, &self.path).expect("rename");
    }

    /// Sets `path`'s modification time to an hour ago plus one second per version written.
    fn age(&self, path: &Path) {
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        let modified =
            SystemTime::now() - Duration::from_secs(3600) + Duration::from_secs(generation);
        fs::File::options()
            .write(true)
            .open(path)
            .and_then(|file| file.set_modified(modified))
            .expect("set modification time");
    }

    fn open(&self) -> HtpasswdAuthenticator {
        HtpasswdAuthenticator::open("Registry", &self.path).expect("valid htpasswd file")
    }

    fn open_error(&self) -> String {
        HtpasswdAuthenticator::open("Registry", &self.path)
            .expect_err("the file is refused")
            .to_string()
    }
}

fn entry(user: &str, password: &str) -> String {
    entry_line(user, password, COST).expect("valid entry")
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    }
}

fn alice() -> Principal {
    Principal {
        name: Some("alice".to_owned()),
        granted: None,
    }
}

/// [`HtpasswdAuthenticator::refresh`], with the error as its message.
fn refresh(auth: &HtpasswdAuthenticator) -> Result<bool, String> {
    auth.refresh().map_err(|error| error.to_string())
}

fn reload_error(auth: &HtpasswdAuthenticator) -> Option<String> {
    auth.last_reload_error().map(|error| error.to_string())
}

/// A bcrypt hash that parses, with `prefix` and `cost` as given.
fn crafted_hash(prefix: &str, cost: &str) -> String {
    format!("{prefix}{cost}${}", ".".repeat(53))
}

#[tokio::test]
async fn correct_password_is_accepted() {
    let fixture = Fixture::new(&[entry("alice", "s3cret"), entry("bob", "other")]);
    let auth = fixture.open();
    assert_eq!(auth.user_count(), 2);
    assert_eq!(
        auth.authenticate(&basic("alice", "s3cret")).await,
        Ok(Some(alice()))
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_error() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();
    let wrong_password = auth.authenticate(&basic("alice", "guess")).await;
    let unknown_user = auth.authenticate(&basic("mallory", "s3cret")).await;
    assert_eq!(wrong_password, Err(AuthError::InvalidCredentials));
    assert_eq!(unknown_user, wrong_password);
    assert_eq!(
        unknown_user.map_err(|error| error.to_string()),
        Err("invalid username or password".to_owned())
    );
}

#[tokio::test]
async fn unknown_user_and_wrong_password_each_run_one_bcrypt_verification() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();
    assert!(auth.authenticate(&basic("alice", "guess")).await.is_err());
    assert_eq!(auth.verifications(), 1);
    assert!(auth.authenticate(&basic("mallory", "guess")).await.is_err());
    assert_eq!(auth.verifications(), 2);
}

#[tokio::test]
async fn unknown_users_are_checked_against_a_hash_of_the_median_cost() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();
    assert!(auth.shared.users().dummy.starts_with("$2y$04$"));
}

#[tokio::test]
async fn no_credentials_are_anonymous() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    assert_eq!(
        fixture.open().authenticate(&Credentials::None).await,
        Ok(None)
    );
}

#[tokio::test]
async fn malformed_header_is_refused() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    assert_eq!(
        fixture.open().authenticate(&Credentials::Malformed).await,
        Err(AuthError::MalformedHeader)
    );
}

#[tokio::test]
async fn bearer_token_is_refused_as_the_wrong_scheme() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();
    assert_eq!(
        auth.authenticate(&Credentials::Bearer("abc.def.ghi".into()))
            .await,
        Err(AuthError::WrongScheme { expected: "Basic" })
    );
    assert_eq!(auth.verifications(), 0);
}

#[test]
fn challenge_is_basic_with_the_realm() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = HtpasswdAuthenticator::open("My Registry", &fixture.path).expect("opens");
    let challenge = auth.challenge(&[], Some(ChallengeError::InvalidToken));
    assert_eq!(
        challenge,
        Challenge::Basic {
            realm: "My Registry".to_owned()
        }
    );
    assert_eq!(challenge.header_value(), "Basic realm=\"My Registry\"");
}

#[tokio::test]
async fn all_bcrypt_prefixes_are_accepted() {
    let versions = [
        ("two_a", bcrypt::Version::TwoA),
        ("two_b", bcrypt::Version::TwoB),
        ("two_y", bcrypt::Version::TwoY),
    ];
    let lines: Vec<String> = versions
        .iter()
        .map(|(user, version)| {
            let hash = bcrypt::hash_with_result("pw", COST).expect("hash");
            format!("{user}:{}", hash.format_for_version(version.clone()))
        })
        .collect();
    assert!(lines[0].contains(":$2a$") && lines[1].contains(":$2b$") && lines[2].contains(":$2y$"));
    let fixture = Fixture::new(&lines);
    let auth = fixture.open();
    for (user, _) in versions {
        let principal = auth
            .authenticate(&basic(user, "pw"))
            .await
            .expect("accepted");
        assert_eq!(principal.and_then(|p| p.name), Some(user.to_owned()));
        assert_eq!(
            auth.authenticate(&basic(user, "nope")).await,
            Err(AuthError::InvalidCredentials)
        );
    }
}

#[test]
fn comments_blank_lines_indentation_and_crlf_are_accepted() {
    let fixture = Fixture::new(&[
        "# registry users".to_owned(),
        String::new(),
        format!("  {}  \r", entry("alice", "s3cret")),
        "   # indented comment".to_owned(),
        "\t".to_owned(),
        entry("bob", "other"),
    ]);
    assert_eq!(fixture.open().user_count(), 2);
}

#[test]
fn non_bcrypt_entries_are_refused_naming_file_line_and_user() {
    let cases = [
        ("$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "$apr1$"),
        ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "{SHA}"),
        ("rl3oQVcXbBZ1U", "crypt or plain text"),
        ("hunter2", "crypt or plain text"),
        ("", "empty"),
        (&crafted_hash("$2x$", "05"), "$2x$"),
        ("$6$salt$hash", "SHA-512-crypt"),
    ];
    for (hash, scheme) in cases {
        let fixture = Fixture::new(&[
            "# users".to_owned(),
            entry("alice", "s3cret"),
            format!("carol:{hash}"),
        ]);
        let message = fixture.open_error();
        for needed in [
            fixture.path.to_str().expect("UTF-8 path"),
            "line 3",
            "\"carol\"",
            scheme,
            "bcrypt",
            "registryd htpasswd -B carol",
        ] {
            assert!(message.contains(needed), "{message:?} lacks {needed:?}");
        }
        if !hash.is_empty() {
            assert!(!message.contains(hash), "the hash leaked: {message}");
        }
    }
}

#[test]
fn bcrypt_with_a_cost_out_of_range_is_refused() {
    for cost in ["03", "32", "99", "00"] {
        let fixture = Fixture::new(&[
            entry("alice", "s3cret"),
            format!("bob:{}", crafted_hash("$2y$", cost)),
        ]);
        let message = fixture.open_error();
        let cost_number = cost.trim_start_matches('0');
        for needed in [
            "line 2",
            "\"bob\"",
            "cost",
            cost_number,
            "4 to 31",
            "registryd htpasswd -B bob",
        ] {
            assert!(message.contains(needed), "{message:?} lacks {needed:?}");
        }
    }
}

#[test]
fn malformed_bcrypt_is_refused() {
    let valid = entry("x", "pw");
    let valid_hash = valid.trim_start_matches("x:");
    let cases = [
        format!("{valid_hash}A"),
        valid_hash[..59].to_owned(),
        valid_hash.replace("$04$", "$4a$"),
        valid_hash.replace("$04$", "$+4$"),
        format!("{}!!{}", &valid_hash[..20], &valid_hash[22..]),
        format!("{}é", &valid_hash[..58]),
    ];
    for hash in cases {
        let fixture = Fixture::new(&[format!("bob:{hash}")]);
        let message = fixture.open_error();
        for needed in ["line 1", "\"bob\"", "invalid", "registryd htpasswd -B bob"] {
            assert!(
                message.contains(needed),
                "{hash}: {message:?} lacks {needed:?}"
            );
        }
    }
}

#[test]
fn line_without_a_user_and_hash_is_refused() {
    for line in ["alice", ":$2y$04$whatever"] {
        let fixture = Fixture::new(&[entry("bob", "pw"), line.to_owned()]);
        let message = fixture.open_error();
        assert!(
            message.contains("line 2") && message.contains("user:hash"),
            "{message}"
        );
    }
}

#[test]
fn duplicate_user_is_refused() {
    let fixture = Fixture::new(&[
        entry("alice", "one"),
        entry("bob", "pw"),
        entry("alice", "two"),
    ]);
    let message = fixture.open_error();
    assert!(
        message.contains("line 3") && message.contains("\"alice\"") && message.contains("line 1"),
        "{message}"
    );
}

#[test]
fn missing_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("nope");
    let message = HtpasswdAuthenticator::open("Registry", &path)
        .expect_err("missing")
        .to_string();
    assert!(
        message.contains(path.to_str().expect("UTF-8 path")),
        "{message}"
    );
}

#[tokio::test]
async fn cache_hit_does_not_run_bcrypt_again() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();
    for _ in 0..5 {
        assert_eq!(
            auth.authenticate(&basic("alice", "s3cret")).await,
            Ok(Some(alice()))
        );
    }
    assert_eq!(auth.verifications(), 1);
}

#[tokio::test]
async fn cached_credential_does_not_admit_another_password() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();
    assert!(auth.authenticate(&basic("alice", "s3cret")).await.is_ok());
    assert_eq!(
        auth.authenticate(&basic("alice", "s3cret2")).await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(auth.verifications(), 2);
}

#[tokio::test]
async fn failed_verification_is_never_cached() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();
    for _ in 0..3 {
        assert!(auth.authenticate(&basic("alice", "guess")).await.is_err());
        assert!(auth.authenticate(&basic("mallory", "guess")).await.is_err());
    }
    assert_eq!(auth.verifications(), 6);
    assert_eq!(auth.shared.cache.len(), 0);
}

#[tokio::test]
async fn changed_password_invalidates_the_cached_credential() {
    let bob = entry("bob", "pw");
    let fixture = Fixture::new(&[entry("alice", "old"), bob.clone()]);
    let auth = fixture.open();
    assert!(auth.authenticate(&basic("alice", "old")).await.is_ok());
    assert!(auth.authenticate(&basic("bob", "pw")).await.is_ok());

    fixture.write(&[entry("alice", "new"), bob]);
    assert_eq!(refresh(&auth), Ok(true));
    assert_eq!(
        auth.authenticate(&basic("alice", "old")).await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        auth.authenticate(&basic("alice", "new")).await,
        Ok(Some(alice()))
    );
    // bob's entry did not change, so his cached credential still holds.
    let before = auth.verifications();
    assert!(auth.authenticate(&basic("bob", "pw")).await.is_ok());
    assert_eq!(auth.verifications(), before);
}

#[tokio::test]
async fn file_rewritten_in_place_is_reloaded() {
    let fixture = Fixture::new(&[entry("alice", "old")]);
    let auth = fixture.open();
    assert!(auth.authenticate(&basic("alice", "old")).await.is_ok());
    // Same inode and, as bcrypt hashes have one length, the same size: only the times differ.
    fs::write(&fixture.path, entry("alice", "new") + "\n").expect("write");
    fixture.age(&fixture.path);
    assert_eq!(refresh(&auth), Ok(true));
    assert!(auth.authenticate(&basic("alice", "old")).await.is_err());
    assert!(auth.authenticate(&basic("alice", "new")).await.is_ok());
}

#[tokio::test]
async fn unchanged_file_is_not_reloaded() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();
    assert_eq!(refresh(&auth), Ok(false));
    assert_eq!(reload_error(&auth), None);
}

#[tokio::test]
async fn removed_user_stops_working_after_reload() {
    let fixture = Fixture::new(&[entry("alice", "s3cret"), entry("bob", "pw")]);
    let auth = fixture.open();
    assert!(auth.authenticate(&basic("bob", "pw")).await.is_ok());
    fixture.write(&[entry("alice", "s3cret")]);
    assert_eq!(refresh(&auth), Ok(true));
    assert_eq!(auth.user_count(), 1);
    assert_eq!(
        auth.authenticate(&basic("bob", "pw")).await,
        Err(AuthError::InvalidCredentials)
    );
}

#[tokio::test]
async fn broken_file_on_reload_keeps_the_previous_users() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();

    fixture.write(&[
        entry("alice", "s3cret"),
        "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=".into(),
    ]);
    let error = auth.refresh().expect_err("the new file is refused");
    assert!(error.to_string().contains("line 2"), "{error}");
    assert_eq!(reload_error(&auth), Some(error.to_string()));
    assert_eq!(
        auth.authenticate(&basic("alice", "s3cret")).await,
        Ok(Some(alice()))
    );
    // Still broken at the next check, without reading it again.
    assert_eq!(refresh(&auth), Err(error.to_string()));

    fixture.write(&[entry("alice", "s3cret"), entry("bob", "pw")]);
    assert_eq!(refresh(&auth), Ok(true));
    assert_eq!(reload_error(&auth), None);
    assert!(auth.authenticate(&basic("bob", "pw")).await.is_ok());
}

/// A file that cannot be read leaves no way to tell which users are meant: credentials are
/// answered as unavailable (503 at the HTTP layer), never as wrong, until it is back.
#[tokio::test]
async fn unreadable_file_on_reload_makes_authentication_unavailable_until_it_is_back() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();
    fs::remove_file(&fixture.path).expect("remove");
    assert!(matches!(auth.refresh(), Err(HtpasswdError::Read { .. })));
    assert!(matches!(
        auth.last_reload_error(),
        Some(HtpasswdError::Read { .. })
    ));
    for credentials in [
        basic("alice", "s3cret"),
        basic("alice", "wrong"),
        basic("bob", "x"),
    ] {
        assert!(
            matches!(
                auth.authenticate(&credentials).await,
                Err(AuthError::Unavailable { .. })
            ),
            "{credentials:?}"
        );
    }
    assert_eq!(auth.authenticate(&Credentials::None).await, Ok(None));

    // A directory where the file was opens but cannot be read either.
    fs::create_dir(&fixture.path).expect("directory in its place");
    assert!(matches!(auth.refresh(), Err(HtpasswdError::Read { .. })));
    assert!(matches!(
        auth.authenticate(&basic("alice", "s3cret")).await,
        Err(AuthError::Unavailable { .. })
    ));
    fs::remove_dir(&fixture.path).expect("remove the directory");

    fixture.write(&[entry("alice", "back")]);
    assert_eq!(refresh(&auth), Ok(true));
    assert!(auth.authenticate(&basic("alice", "back")).await.is_ok());
    assert_eq!(
        auth.authenticate(&basic("alice", "s3cret")).await,
        Err(AuthError::InvalidCredentials)
    );
}

#[tokio::test]
async fn requests_notice_an_unreadable_file_once_the_interval_has_passed() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth =
        HtpasswdAuthenticator::open_with("Registry".into(), fixture.path.clone(), Duration::ZERO)
            .expect("opens");
    assert!(auth.authenticate(&basic("alice", "s3cret")).await.is_ok());
    fs::remove_file(&fixture.path).expect("remove");
    assert!(matches!(
        auth.authenticate(&basic("alice", "s3cret")).await,
        Err(AuthError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn requests_notice_a_changed_file_once_the_interval_has_passed() {
    let fixture = Fixture::new(&[entry("alice", "old")]);
    let auth =
        HtpasswdAuthenticator::open_with("Registry".into(), fixture.path.clone(), Duration::ZERO)
            .expect("opens");
    assert!(auth.authenticate(&basic("alice", "old")).await.is_ok());
    fixture.write(&[entry("alice", "new")]);
    assert!(auth.authenticate(&basic("alice", "old")).await.is_err());
    assert!(auth.authenticate(&basic("alice", "new")).await.is_ok());
}

#[tokio::test]
async fn requests_do_not_check_the_file_before_the_interval() {
    let fixture = Fixture::new(&[entry("alice", "old")]);
    let auth = HtpasswdAuthenticator::open_with(
        "Registry".into(),
        fixture.path.clone(),
        Duration::from_secs(3600),
    )
    .expect("opens");
    fixture.write(&[entry("alice", "new")]);
    assert!(auth.authenticate(&basic("alice", "old")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_the_same_user_all_succeed() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = Arc::new(
        HtpasswdAuthenticator::open_with("Registry".into(), fixture.path.clone(), Duration::ZERO)
            .expect("opens"),
    );
    let tasks: Vec<_> = (0..32)
        .map(|index| {
            let auth = Arc::clone(&auth);
            tokio::spawn(async move {
                let password = if index % 4 == 3 { "guess" } else { "s3cret" };
                (password, auth.authenticate(&basic("alice", password)).await)
            })
        })
        .collect();
    for task in tasks {
        let (password, outcome) = task.await.expect("task finished");
        if password == "s3cret" {
            assert_eq!(outcome, Ok(Some(alice())));
        } else {
            assert_eq!(outcome, Err(AuthError::InvalidCredentials));
        }
    }
    let before = auth.verifications();
    assert!(auth.authenticate(&basic("alice", "s3cret")).await.is_ok());
    assert_eq!(auth.verifications(), before, "the credential is cached");
}

#[test]
fn debug_output_shows_no_hashes() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let shown = format!("{:?}", fixture.open());
    assert!(
        shown.contains("Registry") && shown.contains("users: 1"),
        "{shown}"
    );
    assert!(!shown.contains("$2y$"), "{shown}");
}

#[test]
fn hash_password_writes_2y_hashes_that_verify() {
    let hash = hash_password("s3cret", COST).expect("hash");
    assert!(hash.starts_with("$2y$04$") && hash.len() == 60, "{hash}");
    assert_eq!(bcrypt::verify("s3cret", &hash).ok(), Some(true));
    assert_eq!(bcrypt::verify("other", &hash).ok(), Some(false));
    assert_ne!(
        hash,
        hash_password("s3cret", COST).expect("hash"),
        "salts are random"
    );
}

#[test]
fn entry_line_is_user_colon_hash() {
    let line = entry_line("alice", "s3cret", COST).expect("entry");
    let (user, hash) = line.split_once(':').expect("colon");
    assert_eq!(user, "alice");
    assert_eq!(bcrypt::verify("s3cret", hash).ok(), Some(true));
    assert!(!line.contains('\n'));
}

#[test]
fn unwritable_user_names_are_refused() {
    for user in [
        "", "al:ice", "alice\n", "al\rice", "#alice", " alice", "alice\t",
    ] {
        assert!(
            matches!(
                entry_line(user, "pw", COST),
                Err(HtpasswdError::InvalidUser { .. })
            ),
            "{user:?}"
        );
    }
    assert!(entry_line("alice.smith@example.com", "pw", COST).is_ok());
}

#[test]
fn out_of_range_cost_and_overlong_passwords_are_refused() {
    assert!(matches!(
        hash_password("pw", 3),
        Err(HtpasswdError::InvalidCost { cost: 3 })
    ));
    assert!(matches!(
        hash_password("pw", 32),
        Err(HtpasswdError::InvalidCost { cost: 32 })
    ));
    assert!(hash_password(&"x".repeat(72), COST).is_ok());
    assert!(matches!(
        hash_password(&"x".repeat(73), COST),
        Err(HtpasswdError::PasswordTooLong { length: 73 })
    ));
}

// ---- untrusted input ------------------------------------------------------------------------

/// A hash as an htpasswd file may hold one: bcrypt of every prefix, with costs in and out of
/// range and salts and digests in and out of bcrypt's alphabet, or another scheme, or anything.
fn hash_like() -> impl Strategy<Value = String> {
    let bcrypt_like = (
        prop::sample::select(vec!["$2y$", "$2a$", "$2b$", "$2x$", "$2$", "$1$", "$y$"]),
        prop_oneof![4 => "0[4-9]|[12][0-9]|3[01]", 1 => "[0-9]{2}|[0-9a-z$]{0,3}"],
        prop_oneof![4 => "[./A-Za-z0-9]{53}", 1 => "[./A-Za-z0-9]{50,56}", 1 => "\\PC{53}"],
    )
        .prop_map(|(prefix, cost, rest)| format!("{prefix}{cost}${rest}"));
    prop_oneof![
        4 => bcrypt_like,
        4 => Just(crafted_hash("$2y$", "04")),
        1 => "\\{SHA\\}[A-Za-z0-9+/=]{0,28}|\\$apr1\\$[./A-Za-z0-9$]{0,30}",
        1 => "\\PC{0,64}",
    ]
}

/// A line of an htpasswd file: an entry, a comment, a blank line, or anything.
fn line_like() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => ("[ \\t]{0,2}", "[a-z0-9._@-]{1,12}|\\PC{0,12}", hash_like(), "[ \\t\\r]{0,2}")
            .prop_map(|(before, user, hash, after)| format!("{before}{user}:{hash}{after}")),
        1 => "[ \\t]*#\\PC{0,20}",
        1 => "[ \\t\\r]{0,3}",
        1 => "\\PC{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics_the_htpasswd_parser(text in "\\PC{0,300}") {
        let _ = file::parse(Path::new("htpasswd"), &text);
    }

    /// Every line is read, entries with their user, or the file is refused naming a line that
    /// exists.
    #[test]
    fn htpasswd_files_of_random_lines_load_every_entry_or_name_the_bad_line(
        lines in prop::collection::vec(line_like(), 0..8),
    ) {
        let text = lines.join("\n");
        match file::parse(Path::new("htpasswd"), &text) {
            Ok(users) => {
                let entries = text
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .count();
                prop_assert_eq!(users.hashes.len(), entries);
                prop_assert!(users.hashes.values().all(|hash| hash.len() == 60));
            }
            Err(
                HtpasswdError::MalformedLine { line, .. }
                | HtpasswdError::NotBcrypt { line, .. }
                | HtpasswdError::InvalidBcrypt { line, .. }
                | HtpasswdError::DuplicateUser { line, .. },
            ) => prop_assert!((1..=text.lines().count()).contains(&line)),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }
}

/// Any user name and password a `Basic` header can carry (longer than bcrypt reads, with NUL
/// bytes, not ASCII) is answered as right or wrong, never as unavailable.
#[tokio::test]
async fn arbitrary_credentials_are_right_or_wrong_never_unavailable() {
    let fixture = Fixture::new(&[entry("alice", "s3cret")]);
    let auth = fixture.open();
    let strategy = (
        prop_oneof![Just("alice".to_owned()), "\\PC{1,20}"],
        prop_oneof![
            "\\PC{0,100}",
            "[\\x00-\\x7f]{70,80}",
            Just("s3cret".to_owned())
        ],
    );
    // Generated up front: the checks are async, and proptest's runner calls a plain closure.
    let mut runner = proptest::test_runner::TestRunner::default();
    for _ in 0..32 {
        let (user, password) = strategy.new_tree(&mut runner).expect("a case").current();
        let outcome = auth.authenticate(&basic(&user, &password)).await;
        let right = user == "alice" && password == "s3cret";
        match outcome {
            Ok(Some(_)) => assert!(right, "{user:?} {password:?}"),
            Err(AuthError::InvalidCredentials) => assert!(!right, "{user:?} {password:?}"),
            other => panic!("{user:?} {password:?}: {other:?}"),
        }
    }
}
