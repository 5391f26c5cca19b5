//! `registryd htpasswd`: prints a bcrypt htpasswd line, replacing apache2-utils' `htpasswd -Bbn`.

use std::io::{BufRead, IsTerminal, Write};

use registry::auth::htpasswd::{DEFAULT_COST, entry_line};

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
    /// The password; read from standard input when left out, so it stays out of shell history.
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

/// One line from standard input, without its line ending.
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (it will be shown as you type): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|error| format!("cannot read the password from standard input: {error}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err("no password given: pass it as an argument or on standard input".to_owned());
    }
    Ok(password)
}
