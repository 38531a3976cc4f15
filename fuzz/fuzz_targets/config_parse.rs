//! The config loader (`sluice_config::parse_str`, behind `sluice run -c FILE`): never panics
//! on any text, in TOML or YAML; every error says where (a line and column, or a field path);
//! and the topology of an accepted config can be walked (`reaches`) from every source to
//! every sink.
//!
//! Input: the file's text (lossy UTF-8), parsed once as TOML and once as YAML. `${DB}` and
//! `${PORT}` are set; every other variable is unset.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sluice_config::{Format, parse_str, reaches};

fn env(name: &str) -> Option<String> {
    match name {
        "DB" => Some("app.db".to_owned()),
        "PORT" => Some("5432".to_owned()),
        _ => None,
    }
}

fn check(text: &str, file: &str, format: Format) {
    match parse_str(text, Path::new(file), format, &env) {
        Ok(config) => {
            for source in config.sources.keys() {
                for sink in config.sinks.keys() {
                    let _ = reaches(&config, source, sink);
                }
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(
                e.location.is_some() || e.path.is_some(),
                "an error that does not say where: {shown}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text, "fuzz.toml", Format::Toml);
    check(&text, "fuzz.yaml", Format::Yaml);
});
