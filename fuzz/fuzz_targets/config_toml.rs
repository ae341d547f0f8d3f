//! The TOML configuration through `config::Config::parse`: TOML syntax,
//! the typed tables and every check the daemon makes before it starts.
//!
//! An account naming `password_file` or `password_env` is skipped: those
//! read a file or the environment (a fuzzer that found `/dev/zero` or a
//! FIFO would hang, which is no bug of a file the operator writes).

#![no_main]

use libfuzzer_sys::fuzz_target;
use softphoned::config::Config;

/// Whether the text would make `Config::parse` read a file or a variable.
fn reads_secrets(text: &str) -> bool {
    let Ok(value) = text.parse::<toml::Table>() else { return false };
    let Some(toml::Value::Array(accounts)) = value.get("accounts") else { return false };
    accounts.iter().any(|account| {
        account.as_table().is_some_and(|t| t.contains_key("password_file") || t.contains_key("password_env"))
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if reads_secrets(text) {
        return;
    }
    if let Ok(config) = Config::parse(text) {
        let _ = config.listen_addrs();
        let _ = config.allowed_peers();
    }
});
