//! Commands, help, exit codes and error messages.

use std::process::Command;

use crate::{Fixture, events, run_ok, sluice};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_commands_and_every_command_has_examples() {
    let out = run_ok(sluice().arg("--help"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    insta::assert_snapshot!(text);
    for cmd in [
        "demo", "init", "check", "setup", "teardown", "run", "status",
    ] {
        let out = run_ok(sluice().args([cmd, "--help"]));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Examples:"),
            "`sluice {cmd} --help` has no examples:\n{help}"
        );
    }
}

#[test]
fn demo_shows_live_changes_and_exits_zero() {
    let out = run_ok(sluice().args(["demo", "--changes", "8", "--interval-ms", "20"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ops: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["op"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for op in ["read", "insert", "update", "delete"] {
        assert!(
            ops.iter().any(|o| o == op),
            "no {op} event in demo output:\n{stdout}"
        );
    }
    assert_eq!(ops.iter().filter(|o| *o != "read").count(), 8, "{stdout}");
}

#[test]
fn invalid_config_exits_2_with_location() {
    let f = Fixture::new("CREATE TABLE t (id INTEGER PRIMARY KEY);");
    let config = f.write_config("", "type = \"file\"\npth = \"out.jsonl\"");
    for cmd in ["check", "run", "setup", "status"] {
        let out = sluice().args([cmd, "-c"]).arg(&config).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("sluice.toml:11:1 at `sinks.out.pth`: unknown field `pth`"),
            "{err}"
        );
        assert!(err.contains("did you mean `path`"), "{err}");
    }
    let out = sluice()
        .args(["run", "-c", "/nonexistent/sluice.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the config file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_database_is_a_clear_error_and_writes_no_checkpoint() {
    let f = Fixture::new("");
    std::fs::remove_file(f.path("app.db")).unwrap();
    let config = f.write_config("", "type = \"file\"\npath = \"out.jsonl\"");
    let out = sluice()
        .args(["run", "--once", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("app.db") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!f.path(".sluice/checkpoints/app.json").exists());
    assert!(
        !f.path("app.db").exists(),
        "sluice must not create the database"
    );
    let out = sluice()
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL sources.app"));
}

#[test]
fn full_disk_on_the_file_sink_stops_without_checkpoint() {
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("SKIPPED: /dev/full is not available on this machine");
        return;
    }
    let f = Fixture::new(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');",
    );
    let config = f.write_config("", "type = \"file\"\npath = \"/dev/full\"");
    let out = sluice()
        .args(["run", "--once", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("sink \"out\"") && err.contains("no space left on device"),
        "{err}"
    );
    assert!(
        !f.path(".sluice/checkpoints/app.json").exists(),
        "nothing was delivered, so nothing may be checkpointed"
    );
}

#[test]
fn init_check_setup_run_status_teardown() {
    let f = Fixture::new(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE tags (a TEXT, b TEXT, PRIMARY KEY (a, b));
         CREATE TABLE logs (line TEXT);
         INSERT INTO users VALUES (1, 'ada'), (2, 'grace');
         INSERT INTO tags VALUES ('x', 'y');",
    );
    let config = f.path("generated.toml");
    run_ok(sluice().current_dir(f.dir.path()).args([
        "init",
        "--from",
        "sqlite:app.db",
        "-o",
        "generated.toml",
    ]));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("\"main.users\"") && text.contains("\"main.tags\""),
        "{text}"
    );
    assert!(
        text.contains("#   \"main.logs\""),
        "tables without a key are listed as left out:\n{text}"
    );
    // Refuses to overwrite.
    let out = sluice()
        .current_dir(f.dir.path())
        .args(["init", "--from", "app.db", "-o", "generated.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // check changes nothing.
    let schema = |f: &Fixture| -> Vec<String> {
        let c = f.db();
        // sqlite_sequence appears with the first AUTOINCREMENT table and SQLite never drops it.
        let mut s = c
            .prepare("SELECT name FROM sqlite_master WHERE name <> 'sqlite_sequence' ORDER BY name")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let before = schema(&f);
    let out = run_ok(sluice().args(["check", "-c"]).arg(&config));
    assert!(String::from_utf8_lossy(&out.stdout).contains("missing"));
    assert_eq!(schema(&f), before);

    run_ok(sluice().args(["setup", "-c"]).arg(&config));
    assert!(schema(&f).len() > before.len());
    run_ok(sluice().args(["setup", "-c"]).arg(&config)); // idempotent

    // Switch the generated stdout sink to a file and run once.
    let text = text.replace("type = \"stdout\"", "type = \"file\"\npath = \"out.jsonl\"");
    std::fs::write(&config, text).unwrap();
    // Changes made after setup but before the first run are covered by the snapshot.
    f.db()
        .execute("UPDATE users SET name = 'Ada' WHERE id = 1", [])
        .unwrap();
    run_ok(sluice().args(["run", "--once", "-c"]).arg(&config));
    let evs = events(&f.path("out.jsonl"));
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert!(evs.iter().all(|e| e["op"] == "read"));
    assert_eq!(evs[1]["after"]["name"], "Ada", "{evs:?}");
    // A change between runs arrives with its before-image.
    f.db()
        .execute("UPDATE users SET name = 'Ada L' WHERE id = 1", [])
        .unwrap();
    run_ok(sluice().args(["run", "--once", "-c"]).arg(&config));
    let evs = events(&f.path("out.jsonl"));
    assert_eq!(evs.len(), 4, "{evs:?}");
    assert_eq!(evs[3]["op"], "update");
    assert_eq!(evs[3]["before"]["name"], "Ada");
    assert_eq!(evs[3]["after"]["name"], "Ada L");

    let out = run_ok(sluice().args(["status", "--json", "-c"]).arg(&config));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status[0]["source"], "app");
    assert_eq!(status[0]["lag_events"], 0);
    assert!(status[0]["events"].as_u64().unwrap() >= 4);
    let out = run_ok(sluice().args(["status", "-c"]).arg(&config));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("seq "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    run_ok(sluice().args(["teardown", "-c"]).arg(&config));
    assert_eq!(
        schema(&f),
        before,
        "teardown removes exactly what setup added"
    );
    let n: i64 = f
        .db()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2, "teardown never touches user data");
}

#[test]
fn a_second_run_on_the_same_data_dir_is_refused() {
    let f = Fixture::new("CREATE TABLE t (id INTEGER PRIMARY KEY);");
    let config = f.write_config("", "type = \"null\"");
    let mut first = sluice().args(["run", "-c"]).arg(&config).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = sluice().args(["run", "-c"]).arg(&config).output().unwrap();
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("in use by another sluice process"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sigterm_drains_and_checkpoints_what_was_written() {
    let f = Fixture::new("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    {
        let c = f.db();
        for i in 0..2000 {
            c.execute("INSERT INTO t VALUES (?1, 'x')", [i]).unwrap();
        }
    }
    let config = f.write_config("", "type = \"file\"\npath = \"out.jsonl\"");
    let mut child = sluice().args(["run", "-c"]).arg(&config).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "SIGTERM is a clean stop: {exit}");
    let evs = events(&f.path("out.jsonl"));
    assert_eq!(evs.len(), 2000);
    let cp: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.path(".sluice/checkpoints/app.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        cp["position"]["snapshot"],
        serde_json::Value::Null,
        "snapshot finished: {cp}"
    );
    assert_eq!(cp["events"], 2000);
}

#[test]
fn every_broken_config_in_the_corpus_exits_2_without_panicking() {
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sluice-config/tests/bad");
    let mut n = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let out = sluice().args(["check", "-c"]).arg(&path).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", path.display());
        assert!(
            err.starts_with("error: invalid config "),
            "{}: {err}",
            path.display()
        );
        assert!(!err.contains("panicked"), "{}: {err}", path.display());
        n += 1;
    }
    assert!(n >= 10);
}

#[test]
fn init_from_postgres_writes_a_private_working_config() {
    let Ok(url) = std::env::var("SLUICE_TEST_PG_URL") else {
        eprintln!("SKIPPED: SLUICE_TEST_PG_URL not set (run scripts/test)");
        return;
    };
    let db = format!("sluice_init_{}", std::process::id());
    let psql = |url: &str, sql: &str| {
        let out = Command::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(&url, &format!("CREATE DATABASE {db}"));
    let db_url = format!("{}/{db}", url.rsplit_once('/').unwrap().0);
    psql(
        &db_url,
        "CREATE TABLE users (id int PRIMARY KEY, name text); CREATE TABLE logs (line text); INSERT INTO users VALUES (1, 'ada')",
    );
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        sluice()
            .current_dir(dir.path())
            .args(["init", "--from", &db_url]),
    );
    let config = dir.path().join("sluice.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"public.users\""), "{text}");
    assert!(text.contains("#   \"public.logs\""), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a config holding a password is private");
    }
    let out = run_ok(sluice().args(["run", "--once", "-c"]).arg(&config));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(r#""after":{"id":1,"name":"ada"}"#),
        "{stdout}"
    );

    // A stopping pipeline leaves the slot at its final checkpoint, not the one before.
    psql(&db_url, "INSERT INTO users VALUES (2, 'grace')");
    let out = run_ok(sluice().args(["run", "--once", "-c"]).arg(&config));
    assert!(String::from_utf8_lossy(&out.stdout).contains("grace"));
    let source = db.clone();
    let checkpoint = dir
        .path()
        .join(format!(".sluice/checkpoints/{source}.json"));
    let cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    let lsn = cp["position"]["lsn"].as_str().unwrap().to_owned();
    let out = Command::new("psql")
        .args([db_url.as_str(), "-tA", "-c"])
        .arg(format!(
            "SELECT confirmed_flush_lsn >= '{lsn}' FROM pg_replication_slots WHERE database = '{db}'"
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "t",
        "slot confirmed behind {lsn}"
    );
    let out = run_ok(sluice().args(["status", "--json", "-c"]).arg(&config));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status[0]["lag_bytes"].is_u64(),
        "lag in bytes of WAL: {status}"
    );
    assert!(status[0]["lag_error"].is_null(), "{status}");
    run_ok(sluice().args(["teardown", "-c"]).arg(&config));
    psql(&url, &format!("DROP DATABASE {db}"));
}

/// `sluice check | head -1`: a reader that goes away makes sluice stop quietly, not panic.
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    let f = crate::Fixture::new("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    let config = f.write_config("", "type = \"null\"");
    let mut child = sluice()
        .args(["check", "-c"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before sluice writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn a_bad_postgres_url_is_an_invalid_config_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("?foo=bar", "foo"),
        ("?sslmode=sometimes", "sslmode"),
        ("?connect_timeout=soon", "connect_timeout"),
        (
            "?sslmode=require&sslmode=disable",
            "sslmode is given more than once",
        ),
    ];
    for (params, named) in cases {
        let config = dir.path().join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "[sources.pg]\ntype = \"postgres\"\nurl = \"postgres://app:s3cret@127.0.0.1:9/app{params}\"\n\n\
                 [sinks.out]\ntype = \"null\"\ninputs = [\"pg\"]\n"
            ),
        )
        .unwrap();
        for cmd in ["check", "run"] {
            let out = sluice().args([cmd, "-c"]).arg(&config).output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{cmd} {params}: {err}");
            assert!(err.contains("at `sources.pg.url`"), "{params}: {err}");
            assert!(err.contains(named), "{params}: {err}");
            assert!(!err.contains("s3cret"), "the password leaked: {err}");
        }
    }
    // A url that names no host, or port 0, can never connect: a config error too, not a
    // connection retried for ever.
    for (url, named) in [
        ("postgres://app:s3cret@/app", "names no host"),
        ("postgres://app:s3cret@127.0.0.1:0/app", "port 0"),
    ] {
        let config = dir.path().join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "[sources.pg]\ntype = \"postgres\"\nurl = \"{url}\"\n\n[sinks.out]\ntype = \"null\"\ninputs = [\"pg\"]\n"
            ),
        )
        .unwrap();
        let out = sluice().args(["run", "-c"]).arg(&config).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(
            err.contains("at `sources.pg.url`") && err.contains(named),
            "{url}: {err}"
        );
        assert!(!err.contains("s3cret"), "the password leaked: {err}");
    }
}

#[test]
fn an_empty_resnapshot_table_name_is_a_usage_error() {
    for bad in ["", "public.", ".users", " "] {
        let out = sluice()
            .args(["run", "-c", "missing.toml", "--resnapshot", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(
            stderr(&out).contains("is not a table name"),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
}
