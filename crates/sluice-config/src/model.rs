//! The configuration model: what a config file may say, with defaults as named constants.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use sluice_core::Op;

use crate::Secret;

/// Default for [`SqliteSourceConfig::poll_interval_ms`].
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 50;
/// Default for [`SqliteSourceConfig::max_idle_interval_ms`].
pub const DEFAULT_MAX_IDLE_INTERVAL_MS: u64 = 1_000;
/// Default for [`SqliteSourceConfig::batch_size`].
pub const DEFAULT_SOURCE_BATCH_SIZE: usize = 1_000;
/// Default for [`SqliteSourceConfig::changelog_table`].
pub const DEFAULT_CHANGELOG_TABLE: &str = "_sluice_changelog";
/// Default for [`PostgresSourceConfig::heartbeat_interval_ms`] (0 disables heartbeats).
pub const DEFAULT_PG_HEARTBEAT_INTERVAL_MS: u64 = 10_000;
/// Default for [`PostgresSourceConfig::status_interval_ms`].
pub const DEFAULT_PG_STATUS_INTERVAL_MS: u64 = 1_000;
/// Default for [`PostgresSourceConfig::snapshot_parallelism`].
pub const DEFAULT_PG_SNAPSHOT_PARALLELISM: usize = 2;
/// Default for [`PostgresSourceConfig::snapshot_chunk_pages`] (4,096 pages of 8 kB: 32 MB).
pub const DEFAULT_PG_SNAPSHOT_CHUNK_PAGES: u64 = 4_096;
/// Prefix of the default replication slot and publication names (`sluice_<source name>`).
pub const DEFAULT_PG_NAME_PREFIX: &str = "sluice_";
/// Default for [`BatchConfig::max_events`].
pub const DEFAULT_BATCH_MAX_EVENTS: usize = 1_000;
/// Default for [`BatchConfig::max_bytes`].
pub const DEFAULT_BATCH_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Default for [`BatchConfig::timeout_ms`].
pub const DEFAULT_BATCH_TIMEOUT_MS: u64 = 10;
/// Default state directory, relative to the config file's directory.
pub const DEFAULT_DATA_DIR: &str = ".sluice";

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// Directory for checkpoints and other state (absolute).
    pub data_dir: PathBuf,
    /// Named sources.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Named transforms.
    pub transforms: BTreeMap<String, TransformConfig>,
    /// Named sinks.
    pub sinks: BTreeMap<String, SinkConfig>,
}

/// One source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// `type = "sqlite"`.
    Sqlite(SqliteSourceConfig),
    /// `type = "postgres"`.
    Postgres(PostgresSourceConfig),
}

impl SourceConfig {
    /// The `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceConfig::Sqlite(_) => "sqlite",
            SourceConfig::Postgres(_) => "postgres",
        }
    }
}

/// What to do with rows that exist before capture starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// Read existing rows first (as `read` events), then stream changes.
    #[default]
    Initial,
    /// Stream only changes made after capture was set up.
    Never,
    /// Read existing rows, then finish: no streaming (PostgreSQL only).
    Only,
}

/// `type = "sqlite"`: capture a SQLite database through triggers into a changelog table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSourceConfig {
    /// Database file (relative paths are relative to the config file).
    pub path: PathBuf,
    /// Tables to capture (`users` or `main.users`); left out, every table with a primary
    /// key. An empty list in the file is refused (it would capture everything, not nothing).
    #[serde(default, deserialize_with = "listed_tables")]
    pub tables: Vec<String>,
    /// `initial` (default) or `never`.
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Delay between changelog polls while changes keep arriving.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Longest delay between polls when idle (the delay doubles up to this).
    #[serde(default = "default_max_idle_interval_ms")]
    pub max_idle_interval_ms: u64,
    /// Most changes read per poll.
    #[serde(default = "default_source_batch_size")]
    pub batch_size: usize,
    /// Name of the changelog table the triggers write to.
    #[serde(default = "default_changelog_table")]
    pub changelog_table: String,
}

/// How an update that changes a row's primary key is emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrimaryKeyChange {
    /// A `delete` of the old key, then an `insert` of the new one: sinks that write by key
    /// need nothing special. Under the default replica identity, a large (TOAST) column the
    /// update did not touch arrives in the insert as `{"$unchanged": true}`, because the
    /// server sends its value with neither image.
    #[default]
    DeleteInsert,
    /// One `update` whose `key` is the new key and whose `before` holds the old key (the
    /// whole old row under `REPLICA IDENTITY FULL`), so a consumer can move the row and keep
    /// values the server did not resend.
    Update,
}

/// `type = "postgres"`: capture PostgreSQL through logical replication (`pgoutput`).
///
/// After loading, `slot` and `publication` are always set: when the file leaves them out
/// they default to `sluice_<source name>` (lowercased, `-` becomes `_`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// Connection URL, `postgres://user:password@host:port/database`. Never printed: use
    /// [`crate::redact_url`] on [`Secret::expose`] to show it. The user needs the
    /// `REPLICATION` attribute (or superuser).
    pub url: Secret,
    /// Tables to capture, `schema.table` or `table` (meaning `public.table`); empty means the
    /// tables with a key in `publication` when it exists, else every table with a primary
    /// key in every non-system schema. An empty list in the file is refused (it would
    /// capture everything, not nothing).
    #[serde(default, deserialize_with = "listed_tables")]
    pub tables: Vec<String>,
    /// Logical replication slot name (lowercase letters, digits and `_`, at most 63 bytes).
    #[serde(default)]
    pub slot: String,
    /// Publication name.
    #[serde(default)]
    pub publication: String,
    /// `initial` (default): read existing rows first, then stream; `never`: stream only;
    /// `only`: read existing rows, then finish (no slot, no publication).
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Interval between heartbeats (`pg_logical_emit_message`) that keep the slot moving on
    /// a quiet database; 0 disables them.
    #[serde(default = "default_pg_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// Interval between standby status updates to the server, and the longest a poll waits
    /// before reporting that the source is idle.
    #[serde(default = "default_pg_status_interval_ms")]
    pub status_interval_ms: u64,
    /// Most changes per batch.
    #[serde(default = "default_source_batch_size")]
    pub batch_size: usize,
    /// How many chunks of the snapshot are read at once, each on its own connection
    /// importing the same exported snapshot.
    #[serde(default = "default_pg_snapshot_parallelism")]
    pub snapshot_parallelism: usize,
    /// Size of a snapshot chunk in table pages (`block_size`, 8 kB by default): tables are
    /// read in ranges of this many pages, and an interrupted snapshot resumes from the last
    /// range it delivered whole.
    #[serde(default = "default_pg_snapshot_chunk_pages")]
    pub snapshot_chunk_pages: u64,
    /// `delete_insert` (default) or `update`: how a primary-key change is emitted.
    #[serde(default)]
    pub primary_key_change: PrimaryKeyChange,
    /// Ask the server (PostgreSQL 14+) to send a transaction bigger than its
    /// `logical_decoding_work_mem` while it is still running. sluice keeps the streamed
    /// changes in an unlinked file under `spill_dir` until the commit, then emits them (an
    /// abort discards them). When false, the server spills such a transaction under its own
    /// `pg_replslot` and sends it after the commit.
    #[serde(default = "default_true")]
    pub stream_in_progress: bool,
    /// Where streamed in-progress transactions wait for their commit (set by `sluice run` to
    /// `<data_dir>/spill`, not by the config file); unset, the system temporary directory.
    #[serde(skip)]
    pub spill_dir: Option<PathBuf>,
    /// Where sluice records which tables the checkpoint covers (set by `sluice run` to
    /// `<data_dir>/state`, not by the config file); unset, no record is kept and only tables
    /// newly added to the publication are read before the stream resumes.
    #[serde(skip)]
    pub state_dir: Option<PathBuf>,
    /// Tables to read again before resuming the stream (set by `sluice run --resnapshot`,
    /// not by the config file).
    #[serde(skip)]
    pub resnapshot: Vec<String>,
}

impl PostgresSourceConfig {
    /// A config for `url` with every other field at its default, for a source named
    /// `source_name`.
    pub fn new(source_name: &str, url: impl Into<String>) -> Self {
        let mut c = PostgresSourceConfig {
            url: Secret::new(url),
            tables: Vec::new(),
            slot: String::new(),
            publication: String::new(),
            snapshot: SnapshotMode::Initial,
            heartbeat_interval_ms: DEFAULT_PG_HEARTBEAT_INTERVAL_MS,
            status_interval_ms: DEFAULT_PG_STATUS_INTERVAL_MS,
            batch_size: DEFAULT_SOURCE_BATCH_SIZE,
            snapshot_parallelism: DEFAULT_PG_SNAPSHOT_PARALLELISM,
            snapshot_chunk_pages: DEFAULT_PG_SNAPSHOT_CHUNK_PAGES,
            primary_key_change: PrimaryKeyChange::default(),
            stream_in_progress: true,
            spill_dir: None,
            state_dir: None,
            resnapshot: Vec::new(),
        };
        c.fill_defaults(source_name);
        c
    }

    /// Set `slot` and `publication` to `sluice_<source name>` where they are empty.
    pub fn fill_defaults(&mut self, source_name: &str) {
        let default = default_pg_name(source_name);
        if self.slot.is_empty() {
            self.slot = default.clone();
        }
        if self.publication.is_empty() {
            self.publication = default;
        }
    }
}

/// `sluice_<source name>`, lowercased, with every character other than a letter, digit or
/// `_` replaced by `_`: a valid replication slot name.
pub fn default_pg_name(source_name: &str) -> String {
    let tail: String = source_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("{DEFAULT_PG_NAME_PREFIX}{tail}");
    name.truncate(63);
    name
}

/// One transform.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformConfig {
    /// Names of sources or transforms feeding it.
    pub inputs: Vec<String>,
    /// What it does.
    pub kind: TransformKind,
}

/// The transform types.
#[derive(Debug, Clone, PartialEq)]
pub enum TransformKind {
    /// `type = "filter"`.
    Filter(FilterTransform),
    /// `type = "select"`.
    Select(SelectTransform),
}

/// `type = "filter"`: keep only changes of some tables and ops.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterTransform {
    /// Table patterns to keep (`users`, `main.users`, `main.*`); empty keeps every table.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Table patterns to drop, applied after `tables`.
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// Ops to keep; empty keeps every op.
    #[serde(default)]
    pub ops: Vec<Op>,
}

/// `type = "select"`: keep, drop and rename columns.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectTransform {
    /// Table patterns this applies to; empty means every table.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Columns to keep (key columns are always kept in `key`); empty keeps all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Columns to drop.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Old name → new name, applied last (also to `key`).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
}

/// One sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// Names of sources or transforms feeding it.
    pub inputs: Vec<String>,
    /// Batching limits.
    pub batch: BatchConfig,
    /// Where it writes.
    pub kind: SinkKind,
}

/// The sink types.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    /// `type = "stdout"`.
    Stdout(StdoutSinkConfig),
    /// `type = "file"`.
    File(FileSinkConfig),
    /// `type = "null"`.
    Null(NullSinkConfig),
}

impl SinkKind {
    /// The `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Stdout(_) => "stdout",
            SinkKind::File(_) => "file",
            SinkKind::Null(_) => "null",
        }
    }
}

/// `type = "stdout"`: JSON lines on standard output.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Pretty-print each event over several lines.
    #[serde(default)]
    pub pretty: bool,
}

/// `type = "null"`: discards every change (benchmarks, dry runs).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullSinkConfig {}

/// `type = "file"`: JSON lines appended to a file, fsynced before acknowledging.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Output file (relative paths are relative to the config file).
    pub path: PathBuf,
}

/// When a sink flushes a batch: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most changes per write.
    #[serde(default = "default_batch_max_events")]
    pub max_events: usize,
    /// Most (approximate) bytes per write.
    #[serde(default = "default_batch_max_bytes")]
    pub max_bytes: usize,
    /// Longest time a change waits for its batch to fill.
    #[serde(default = "default_batch_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: DEFAULT_BATCH_MAX_EVENTS,
            max_bytes: DEFAULT_BATCH_MAX_BYTES,
            timeout_ms: DEFAULT_BATCH_TIMEOUT_MS,
        }
    }
}

fn default_poll_interval_ms() -> u64 {
    DEFAULT_POLL_INTERVAL_MS
}
fn default_max_idle_interval_ms() -> u64 {
    DEFAULT_MAX_IDLE_INTERVAL_MS
}
fn default_source_batch_size() -> usize {
    DEFAULT_SOURCE_BATCH_SIZE
}
fn default_pg_heartbeat_interval_ms() -> u64 {
    DEFAULT_PG_HEARTBEAT_INTERVAL_MS
}
fn default_pg_status_interval_ms() -> u64 {
    DEFAULT_PG_STATUS_INTERVAL_MS
}
fn default_pg_snapshot_parallelism() -> usize {
    DEFAULT_PG_SNAPSHOT_PARALLELISM
}
fn default_pg_snapshot_chunk_pages() -> u64 {
    DEFAULT_PG_SNAPSHOT_CHUNK_PAGES
}
fn default_changelog_table() -> String {
    DEFAULT_CHANGELOG_TABLE.to_owned()
}
fn default_batch_max_events() -> usize {
    DEFAULT_BATCH_MAX_EVENTS
}
fn default_batch_max_bytes() -> usize {
    DEFAULT_BATCH_MAX_BYTES
}
fn default_batch_timeout_ms() -> u64 {
    DEFAULT_BATCH_TIMEOUT_MS
}

/// True when `pattern` matches the fully qualified `table` (`schema.name`). A pattern without
/// a dot matches the name in any schema; `*` matches any run of characters.
pub fn table_matches(pattern: &str, table: &str) -> bool {
    if pattern.contains('.') {
        glob(pattern, table)
    } else {
        let name = table.split_once('.').map_or(table, |(_, n)| n);
        glob(pattern, name)
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut remaining) = text.strip_prefix(head) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('*').collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn default_true() -> bool {
    true
}

/// A source's `tables` as written in the file: at least one table. Leaving the key out
/// captures every keyed table; `tables = []` would read as "capture nothing" but means
/// the same as leaving it out, so it is refused rather than guessed at.
fn listed_tables<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let tables = <Vec<String> as serde::Deserialize>::deserialize(d)?;
    if tables.is_empty() {
        return Err(serde::de::Error::custom(
            "`tables` is empty: list at least one table, or leave `tables` out to capture every table with a primary key",
        ));
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::table_matches;

    #[test]
    fn table_patterns() {
        assert!(table_matches("users", "main.users"));
        assert!(table_matches("main.users", "main.users"));
        assert!(!table_matches("other.users", "main.users"));
        assert!(table_matches("main.*", "main.users"));
        assert!(table_matches("*", "main.users"));
        assert!(table_matches("u*s", "main.users"));
        assert!(!table_matches("u*x", "main.users"));
        assert!(table_matches("*_log", "main.audit_log"));
        assert!(!table_matches("user", "main.users"));
    }
}
