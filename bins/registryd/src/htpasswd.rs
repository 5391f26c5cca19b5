//! `registryd htpasswd`: prints a bcrypt htpasswd line, replacing apache2-utils' `htpasswd -Bbn`.

use std::io::{BufRead, IsTerminal, Stdin, Write};
use std::os::fd::{AsFd, BorrowedFd};

use registry::auth::htpasswd::{DEFAULT_COST, entry_line};
use rustix::termios::{LocalModes, OptionalActions, Termios, tcgetattr, tcsetattr};

/// Arguments of `registryd htpasswd`.
#[derive(Debug, clap::Args)]
pub(crate) struct HtpasswdArgs {
    /// Use bcrypt (the only scheme registryd accepts; kept for `htpasswd -B` habits).
    #[arg(short = 'B')]
    bcrypt: bool,
    /// bcrypt cost: each step doubles the time a check takes (4 to 31).
    #[arg(short = 'C', long, default_value_t = DEFAULT_COST)]
    cost: u32,
    /// The user name.
    user: String,
    /// The password; when left out (so it stays out of shell history), asked for twice without
    /// echo on a terminal, or read as the first line of standard input otherwise.
    password: Option<String>,
}

/// Prints `user:$2y$...` for the arguments.
pub(crate) fn run(args: HtpasswdArgs) -> Result<(), String> {
    let _ = args.bcrypt;
    let password = match args.password {
        Some(password) => password,
        None => read_password()?,
    };
    let line = entry_line(&args.user, &password, args.cost).map_err(|error| error.to_string())?;
    println!("{line}");
    Ok(())
}

/// The password from standard input: typed twice without echo when it is a terminal (the two
/// must match), else its first line.
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return first_line(&mut stdin.lock());
    }
    let first = read_hidden(&stdin, "Password: ")?;
    let again = read_hidden(&stdin, "Password again: ")?;
    confirmed(first, again)
}

/// One line typed on the terminal `stdin` after `prompt` (on stderr), not echoed.
fn read_hidden(stdin: &Stdin, prompt: &str) -> Result<String, String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let _echo_off = EchoOff::new(stdin.as_fd())
        .map_err(|error| format!("cannot turn off the terminal's echo: {error}"))?;
    first_line(&mut stdin.lock())
}

/// `first` when `again` is the same: a typing mistake is caught rather than stored.
fn confirmed(first: String, again: String) -> Result<String, String> {
    if first == again {
        Ok(first)
    } else {
        Err("the two passwords differ; nothing was printed, try again".to_owned())
    }
}

/// The first line of `input`, without its line ending; an error when it is empty.
fn first_line(input: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|error| format!("cannot read the password from standard input: {error}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err("no password given: pass it as an argument or on standard input".to_owned());
    }
    Ok(password)
}

/// Turns a terminal's echo off (the newline is still echoed, so the next prompt starts on its own
/// line) until dropped, which restores the terminal's settings as they were.
struct EchoOff<'a> {
    terminal: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> EchoOff<'a> {
    fn new(terminal: BorrowedFd<'a>) -> rustix::io::Result<EchoOff<'a>> {
        let saved = tcgetattr(terminal)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        quiet.local_modes.insert(LocalModes::ECHONL);
        tcsetattr(terminal, OptionalActions::Now, &quiet)?;
        Ok(EchoOff { terminal, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.terminal, OptionalActions::Now, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_typed_twice_must_match() {
        assert_eq!(
            confirmed("s3cret".to_owned(), "s3cret".to_owned()),
            Ok("s3cret".to_owned())
        );
        let error = confirmed("s3cret".to_owned(), "s3cert".to_owned()).expect_err("differ");
        assert!(error.contains("differ"), "{error}");
    }

    #[test]
    fn only_the_first_line_is_the_password_and_an_empty_one_is_refused() {
        let mut input = &b"pa:ss word\r\nsecond line\n"[..];
        assert_eq!(first_line(&mut input), Ok("pa:ss word".to_owned()));
        let mut empty = &b"\n"[..];
        assert!(first_line(&mut empty).is_err());
        let mut nothing = &b""[..];
        assert!(first_line(&mut nothing).is_err());
    }
}
