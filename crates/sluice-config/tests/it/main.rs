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
    let SourceConfig::Sqlite(s) = &a.sources["app"] else {
        panic!("not sqlite")
    };
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
    let SourceConfig::Sqlite(s) = &c.sources["app"] else {
        panic!("not sqlite")
    };
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

#[test]
fn postgres_source_defaults_and_secret_url() {
    let text = "[sources.my-app]\ntype = \"postgres\"\nurl = \"postgres://app:hunter2@db/app\"\ntables = [\"users\", \"audit.log\"]\n[sinks.o]\ntype = \"stdout\"\ninputs = [\"my-app\"]\n";
    let c = parse_str(text, Path::new("c.toml"), Format::Toml, &no_env).unwrap();
    let SourceConfig::Postgres(pg) = &c.sources["my-app"] else {
        panic!("not postgres")
    };
    assert_eq!(pg.slot, "sluice_my_app");
    assert_eq!(pg.publication, "sluice_my_app");
    assert_eq!(pg.tables, ["users", "audit.log"]);
    assert_eq!(
        pg.heartbeat_interval_ms,
        sluice_config::DEFAULT_PG_HEARTBEAT_INTERVAL_MS
    );
    assert_eq!(
        pg.status_interval_ms,
        sluice_config::DEFAULT_PG_STATUS_INTERVAL_MS
    );
    assert_eq!(
        pg.snapshot_parallelism,
        sluice_config::DEFAULT_PG_SNAPSHOT_PARALLELISM
    );
    assert_eq!(
        pg.snapshot_chunk_pages,
        sluice_config::DEFAULT_PG_SNAPSHOT_CHUNK_PAGES
    );
    assert_eq!(pg.url.expose(), "postgres://app:hunter2@db/app");
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn postgres_source_rejects_bad_values() {
    let cases = [
        ("url = \"mysql://x\"", "must be a postgres:// URL"),
        (
            "url = \"postgres://x\"\nslot = \"Bad-Slot\"",
            "invalid replication slot name",
        ),
        (
            "url = \"postgres://x\"\ntables = [\"a.b.c\"]",
            "invalid table name",
        ),
        (
            "url = \"postgres://x\"\nstatus_interval_ms = 0",
            "must be greater than 0",
        ),
        (
            "url = \"postgres://x\"\nsnapshot_parallelism = 0",
            "at `sources.app.snapshot_parallelism`: must be greater than 0",
        ),
        (
            "url = \"postgres://x\"\nsnapshot_chunk_pages = 0",
            "at `sources.app.snapshot_chunk_pages`: must be greater than 0",
        ),
        (
            "url = \"postgres://x\"\nslots = \"x\"",
            "unknown field `slots`",
        ),
        ("tables = [\"t\"]", "missing field `url`"),
        (
            "url = \"postgres://x\"\ntables = []",
            "at `sources.app.tables`: `tables` is empty",
        ),
    ];
    for (fields, expected) in cases {
        let text = format!(
            "[sources.app]\ntype = \"postgres\"\n{fields}\n[sinks.o]\ntype = \"stdout\"\ninputs = [\"app\"]\n"
        );
        let e = parse_str(&text, Path::new("c.toml"), Format::Toml, &no_env).unwrap_err();
        assert!(e.to_string().contains(expected), "{fields}: {e}");
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "[sources.app]\ntype = \"sqlite\"\npath = \"${DB:-a.db}\"\n[sinks.o]\ntype = \"stdout\"\ninputs = [\"app\"]\n";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn on_arbitrary_text(text in ".{0,300}") {
            let _ = parse_str(&text, Path::new("x.toml"), Format::Toml, &no_env);
            let _ = parse_str(&text, Path::new("x.yaml"), Format::Yaml, &no_env);
        }

        #[test]
        fn on_mutations_of_a_valid_config(at in 0usize..120, byte in any::<u8>(), cut in 0usize..130) {
            let mut bytes = VALID.as_bytes().to_vec();
            let at = at.min(bytes.len() - 1);
            bytes[at] = byte;
            bytes.truncate(cut.max(1));
            let text = String::from_utf8_lossy(&bytes);
            if let Err(e) = parse_str(&text, Path::new("x.toml"), Format::Toml, &no_env) {
                // Every error says where it is or names the field.
                prop_assert!(e.location.is_some() || e.path.is_some(), "{e}");
            }
        }
    }
}

#[test]
fn snapshot_only_is_for_postgres() {
    let pg = "[sources.app]\ntype = \"postgres\"\nurl = \"postgres://x\"\nsnapshot = \"only\"\n[sinks.o]\ntype = \"stdout\"\ninputs = [\"app\"]\n";
    let c = parse_str(pg, Path::new("c.toml"), Format::Toml, &no_env).unwrap();
    let SourceConfig::Postgres(pg) = &c.sources["app"] else {
        panic!("not postgres")
    };
    assert_eq!(pg.snapshot, sluice_config::SnapshotMode::Only);
    let sqlite = "[sources.app]\ntype = \"sqlite\"\npath = \"a.db\"\nsnapshot = \"only\"\n[sinks.o]\ntype = \"stdout\"\ninputs = [\"app\"]\n";
    let e = parse_str(sqlite, Path::new("c.toml"), Format::Toml, &no_env).unwrap_err();
    assert!(
        e.to_string()
            .contains("at `sources.app.snapshot`: `only` is not supported by sqlite sources"),
        "{e}"
    );
}
