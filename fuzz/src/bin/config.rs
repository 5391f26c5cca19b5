//! The configuration loader: a YAML document, then after a NUL byte `REGISTRY_*` variables as
//! `NAME=VALUE` lines. Loading must give a configuration or an error of one line.

use registry::config::Config;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let (yaml, variables) = text.split_once('\0').unwrap_or((text, ""));
        let env = variables.lines().filter_map(|line| {
            line.split_once('=')
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
        });
        if let Err(error) = Config::from_yaml(yaml, env) {
            assert!(!error.to_string().contains('\n'));
        }
    });
}
