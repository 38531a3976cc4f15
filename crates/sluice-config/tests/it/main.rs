//! Integration tests of config loading: good configs in both formats, and a corpus of broken
//! ones whose errors are pinned.

use std::path::{Path, PathBuf};

use sluice_config::{Format, SinkKind, SourceConfig, TransformKind, load, parse_str};

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn every_bad_config_gets_a_located_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    let mut report = String::new();
    for file in files {
        let err = load(&file).expect_err(&format!("{} should be rejected", file.display()));
        let msg = err.to_string().replace(&format!("{}/", dir.display()), "");
        report.push_str(&msg);
        report.push('\n');
        assert!(err.location.is_some(), "{msg}");
        if !file.ends_with("syntax.toml") {
            assert!(err.hint.is_some() || err.path.is_some(), "{msg}");
        }
    }
    insta::assert_snapshot!(report);
}

#[test]
fn toml_and_yaml_configs_are_equivalent() {
    let toml = r#"
data_dir = "state"

[sources.app]
type = "sqlite"
path = "${DB:-app.db}"
tables = ["users", "main.orders"]

[transforms.writes]
type = "filter"
inputs = ["app"]
ops = ["insert", "update"]

[transforms.slim]
type = "select"
inputs = ["writes"]
exclude = ["password_hash"]
rename = { email = "mail" }

[sinks.out]
type = "file"
inputs = ["slim"]
path = "out/changes.jsonl"
batch = { max_events = 10, timeout_ms = 5 }
"#;
    let yaml = r#"
data_dir: state
sources:
  app:
    type: sqlite
    path: ${DB:-app.db}
    tables: [users, main.orders]
transforms:
  writes:
    type: filter
    inputs: [app]
    ops: [insert, update]
  slim:
    type: select
    inputs: [writes]
    exclude: [password_hash]
    rename: {email: mail}
sinks:
  out:
    type: file
    inputs: [slim]
    path: out/changes.jsonl
    batch: {max_events: 10, timeout_ms: 5}
"#;
    let a = parse_str(toml, Path::new("/etc/sluice/x.toml"), Format::Toml, &no_env).unwrap();
    let mut b = parse_str(yaml, Path::new("/etc/sluice/x.yaml"), Format::Yaml, &no_env).unwrap();
    b.file = a.file.clone();
    assert_eq!(a, b);
    assert_eq!(a.data_dir, Path::new("/etc/sluice/state"));
    let SourceConfig::Sqlite(s) = &a.sources["app"];
    assert_eq!(s.path, Path::new("/etc/sluice/app.db"));
    assert_eq!(s.batch_size, sluice_config::DEFAULT_SOURCE_BATCH_SIZE);
    let SinkKind::File(f) = &a.sinks["out"].kind else {
        panic!("file sink")
    };
    assert_eq!(f.path, Path::new("/etc/sluice/out/changes.jsonl"));
    assert_eq!(a.sinks["out"].batch.max_events, 10);
    assert_eq!(
        a.sinks["out"].batch.max_bytes,
        sluice_config::DEFAULT_BATCH_MAX_BYTES
    );
    let TransformKind::Select(sel) = &a.transforms["slim"].kind else {
        panic!("select")
    };
    assert_eq!(sel.rename["email"], "mail");
}

#[test]
fn environment_variables_fill_values() {
    let text = "[sources.app]\ntype = \"sqlite\"\npath = \"${DB}\"\n[sinks.o]\ntype = \"stdout\"\ninputs = [\"app\"]\n";
    let env = |n: &str| (n == "DB").then(|| "/data/app.db".to_owned());
    let c = parse_str(text, Path::new("c.toml"), Format::Toml, &env).unwrap();
    let SourceConfig::Sqlite(s) = &c.sources["app"];
    assert_eq!(s.path, Path::new("/data/app.db"));
    assert_eq!(c.data_dir, Path::new(".sluice"));
}

#[test]
fn shipped_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        parse_str(&text, &path, Format::of_path(&path), &no_env)
            .unwrap_or_else(|e| panic!("{} is invalid: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 2);
}
