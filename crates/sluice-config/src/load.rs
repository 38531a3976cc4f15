//! Reading a config file: substitute variables, parse, dispatch on `type`, validate (no I/O
//! beyond reading the file), resolve relative paths against the config file's directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::de::{from_node, join};
use crate::error::{ConfigError, Location, NodeError, closest};
use crate::model::*;
use crate::node::{Key, Node, NodeKind, parse_toml, parse_yaml};

/// The file formats a config may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML (the default).
    Toml,
    /// YAML (`.yaml` / `.yml`).
    Yaml,
}

impl Format {
    /// The format implied by a file name: YAML for `.yaml`/`.yml`, TOML otherwise.
    pub fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Toml,
        }
    }
}

/// Source types known to this build.
pub const SOURCE_TYPES: &[&str] = &["sqlite", "postgres"];
/// Transform types known to this build.
pub const TRANSFORM_TYPES: &[&str] = &["filter", "select"];
/// Sink types known to this build.
pub const SINK_TYPES: &[&str] = &["stdout", "file", "null"];

/// Read, substitute, parse and validate the config at `path`, using the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        location: None,
        path: None,
        message: format!("cannot read the config file: {e}"),
        hint: Some(if e.kind() == std::io::ErrorKind::NotFound {
            "pass the right file with -c/--config, or write one with `sluice init --from <db>`"
                .to_owned()
        } else {
            "check the file's permissions".to_owned()
        }),
    })?;
    parse_str(&text, path, Format::of_path(path), &|name| {
        std::env::var(name).ok()
    })
}

/// Parse and validate config `text` as if read from `file`.
pub fn parse_str(
    text: &str,
    file: &Path,
    format: Format,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let in_file = |e: NodeError| e.in_file(file);
    let text = crate::env::substitute(text, env).map_err(in_file)?;
    let root = match format {
        Format::Toml => parse_toml(&text),
        Format::Yaml => parse_yaml(&text),
    }
    .map_err(in_file)?;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    build(&root, &base).map_err(in_file).map(|mut c| {
        c.file = file.to_path_buf();
        c
    })
}

fn entries<'a>(node: &'a Node, path: &str) -> Result<&'a [(Key, Node)], NodeError> {
    match &node.kind {
        NodeKind::Map(entries) => Ok(entries),
        other => Err(
            NodeError::new(format!("expected a table, found {}", other.describe()))
                .at(node.location, path),
        ),
    }
}

fn build(root: &Node, base: &Path) -> Result<Config, NodeError> {
    let mut config = Config {
        file: PathBuf::new(),
        data_dir: base.join(DEFAULT_DATA_DIR),
        sources: BTreeMap::new(),
        transforms: BTreeMap::new(),
        sinks: BTreeMap::new(),
    };
    let mut locations: BTreeMap<String, Location> = BTreeMap::new();
    for (key, node) in entries(root, "")? {
        match key.name.as_str() {
            "data_dir" => config.data_dir = base.join(from_node::<PathBuf>(node, "data_dir")?),
            section @ ("sources" | "transforms" | "sinks") => {
                for (name, component) in entries(node, section)? {
                    let path = join(section, &name.name);
                    check_name(name, &path)?;
                    if let Some(first) = locations.insert(name.name.clone(), name.location) {
                        return Err(NodeError::new(format!(
                            "the name `{}` is used twice (first at line {})",
                            name.name, first.line
                        ))
                        .at(name.location, &path)
                        .hint("sources, transforms and sinks share one namespace"));
                    }
                    match section {
                        "sources" => {
                            let source = source(component, &path, base, &name.name)?;
                            config.sources.insert(name.name.clone(), source);
                        }
                        "transforms" => {
                            let transform = transform(component, &path)?;
                            config.transforms.insert(name.name.clone(), transform);
                        }
                        _ => {
                            let sink = sink(component, &path, base)?;
                            config.sinks.insert(name.name.clone(), sink);
                        }
                    }
                }
            }
            other => {
                let known = ["data_dir", "sources", "transforms", "sinks"];
                let mut e = NodeError::new(format!("unknown top-level key `{other}`"));
                e.hint = Some(match closest(other, &known) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("valid keys: {}", known.join(", ")),
                });
                return Err(e.at(key.location, other));
            }
        }
    }
    validate(&config, &locations, root)?;
    Ok(config)
}

fn check_name(name: &Key, path: &str) -> Result<(), NodeError> {
    let ok = !name.name.is_empty()
        && name
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        return Ok(());
    }
    Err(
        NodeError::new(format!("invalid component name `{}`", name.name))
            .at(name.location, path)
            .hint("names use letters, digits, `_` and `-`"),
    )
}

/// Split a component table into its `type`, the named common fields, and the rest.
struct Parts<'a> {
    type_name: String,
    type_node: &'a Node,
    common: BTreeMap<&'static str, &'a Node>,
    rest: Node,
}

fn split<'a>(
    node: &'a Node,
    path: &str,
    common: &[&'static str],
    types: &[&str],
) -> Result<Parts<'a>, NodeError> {
    let mut type_node = None;
    let mut found = BTreeMap::new();
    let mut rest = Vec::new();
    for (key, value) in entries(node, path)? {
        if key.name == "type" {
            type_node = Some(value);
        } else if let Some(name) = common.iter().find(|c| **c == key.name) {
            found.insert(*name, value);
        } else {
            rest.push((key.clone(), value.clone()));
        }
    }
    let hint = format!("set `type` to one of {}", types.join(", "));
    let Some(type_node) = type_node else {
        return Err(NodeError::new("missing field `type`")
            .at(node.location, path)
            .hint(hint));
    };
    let type_path = join(path, "type");
    let type_name: String = from_node(type_node, &type_path)?;
    if !types.contains(&type_name.as_str()) {
        let mut e = NodeError::new(format!("unknown type `{type_name}`"));
        e.hint = Some(match closest(&type_name, types) {
            Some(best) => format!("did you mean `{best}`? known types: {}", types.join(", ")),
            None => format!("known types: {}", types.join(", ")),
        });
        return Err(e.at(type_node.location, &type_path));
    }
    let rest = Node {
        kind: NodeKind::Map(rest),
        location: node.location,
    };
    Ok(Parts {
        type_name,
        type_node,
        common: found,
        rest,
    })
}

impl Parts<'_> {
    /// Deserialize the type-specific fields; an unknown-field hint also lists the common ones.
    fn typed<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        common: &[&str],
    ) -> Result<T, NodeError> {
        from_node(&self.rest, path).map_err(|mut e: NodeError| {
            if e.message.starts_with("unknown field")
                && let Some(hint) = &mut e.hint
            {
                for c in ["type"].iter().chain(common) {
                    hint.push_str(", ");
                    hint.push_str(c);
                }
                *hint = hint.replace("this section takes no fields, ", "valid fields: ");
            }
            e
        })
    }
}

fn inputs(parts: &Parts<'_>, node: &Node, path: &str) -> Result<Vec<String>, NodeError> {
    match parts.common.get("inputs") {
        Some(n) => from_node(n, &join(path, "inputs")),
        None => Err(NodeError::new("missing field `inputs`")
            .at(node.location, path)
            .hint("list the sources or transforms that feed it, e.g. inputs = [\"app\"]")),
    }
}

fn source(node: &Node, path: &str, base: &Path, name: &str) -> Result<SourceConfig, NodeError> {
    let parts = split(node, path, &[], SOURCE_TYPES)?;
    match parts.type_name.as_str() {
        "sqlite" => {
            let mut c: SqliteSourceConfig = parts.typed(path, &[])?;
            c.path = base.join(&c.path);
            let at = |field: &str| {
                let n = field_node(&parts.rest, field).unwrap_or(&parts.rest);
                (n.location, join(path, field))
            };
            positive(c.batch_size as u64, at("batch_size"))?;
            positive(c.poll_interval_ms, at("poll_interval_ms"))?;
            if c.snapshot == SnapshotMode::Only {
                let (loc, p) = at("snapshot");
                return Err(NodeError::new("`only` is not supported by sqlite sources")
                    .at(loc, &p)
                    .hint("use `initial` and stop sluice once the snapshot is read"));
            }
            if c.max_idle_interval_ms < c.poll_interval_ms {
                let (loc, p) = at("max_idle_interval_ms");
                return Err(NodeError::new("must be at least `poll_interval_ms`").at(loc, &p));
            }
            if c.changelog_table.is_empty() {
                let (loc, p) = at("changelog_table");
                return Err(NodeError::new("must not be empty").at(loc, &p));
            }
            Ok(SourceConfig::Sqlite(c))
        }
        "postgres" => {
            let mut c: PostgresSourceConfig = parts.typed(path, &[])?;
            let at = |field: &str| {
                let n = field_node(&parts.rest, field).unwrap_or(&parts.rest);
                (n.location, join(path, field))
            };
            let url = c.url.expose();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                let (loc, p) = at("url");
                return Err(NodeError::new("must be a postgres:// URL")
                    .at(loc, &p)
                    .hint(
                        "for example url = \"postgres://app:${PGPASSWORD}@127.0.0.1:5432/app\"",
                    ));
            }
            positive(c.batch_size as u64, at("batch_size"))?;
            positive(c.status_interval_ms, at("status_interval_ms"))?;
            positive(c.snapshot_parallelism as u64, at("snapshot_parallelism"))?;
            positive(c.snapshot_chunk_pages, at("snapshot_chunk_pages"))?;
            for (i, table) in c.tables.iter().enumerate() {
                let parts: Vec<&str> = table.split('.').collect();
                if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
                    let (loc, p) = at("tables");
                    return Err(NodeError::new(format!(
                        "invalid table name {table:?} (item {})",
                        i + 1
                    ))
                    .at(loc, &p)
                    .hint("write `schema.table`, or `table` for `public.table`"));
                }
            }
            let slot_given = !c.slot.is_empty();
            c.fill_defaults(name);
            if slot_given
                && (c.slot.len() > 63
                    || !c
                        .slot
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            {
                let (loc, p) = at("slot");
                return Err(NodeError::new(format!("invalid replication slot name {:?}", c.slot))
                    .at(loc, &p)
                    .hint("slot names use lowercase letters, digits and `_`, at most 63 characters"));
            }
            if c.publication.len() > 63 {
                let (loc, p) = at("publication");
                return Err(NodeError::new("must be at most 63 bytes").at(loc, &p));
            }
            Ok(SourceConfig::Postgres(c))
        }
        other => Err(unreachable_type(other, parts.type_node, path)),
    }
}

fn transform(node: &Node, path: &str) -> Result<TransformConfig, NodeError> {
    let parts = split(node, path, &["inputs"], TRANSFORM_TYPES)?;
    let inputs = inputs(&parts, node, path)?;
    let kind = match parts.type_name.as_str() {
        "filter" => TransformKind::Filter(parts.typed(path, &["inputs"])?),
        "select" => TransformKind::Select(parts.typed(path, &["inputs"])?),
        other => return Err(unreachable_type(other, parts.type_node, path)),
    };
    Ok(TransformConfig { inputs, kind })
}

fn sink(node: &Node, path: &str, base: &Path) -> Result<SinkConfig, NodeError> {
    let parts = split(node, path, &["inputs", "batch"], SINK_TYPES)?;
    let inputs = inputs(&parts, node, path)?;
    let batch: BatchConfig = match parts.common.get("batch") {
        Some(n) => {
            let bp = join(path, "batch");
            let b: BatchConfig = from_node(n, &bp)?;
            let at = |field: &str| {
                let f = field_node(n, field).unwrap_or(n);
                (f.location, join(&bp, field))
            };
            positive(b.max_events as u64, at("max_events"))?;
            positive(b.max_bytes as u64, at("max_bytes"))?;
            b
        }
        None => BatchConfig::default(),
    };
    let kind = match parts.type_name.as_str() {
        "stdout" => SinkKind::Stdout(parts.typed(path, &["inputs", "batch"])?),
        "file" => {
            let mut c: FileSinkConfig = parts.typed(path, &["inputs", "batch"])?;
            c.path = base.join(&c.path);
            SinkKind::File(c)
        }
        "null" => SinkKind::Null(parts.typed(path, &["inputs", "batch"])?),
        other => return Err(unreachable_type(other, parts.type_node, path)),
    };
    Ok(SinkConfig {
        inputs,
        batch,
        kind,
    })
}

fn unreachable_type(type_name: &str, node: &Node, path: &str) -> NodeError {
    NodeError::new(format!("type `{type_name}` is not built into this binary"))
        .at(node.location, &join(path, "type"))
}

fn field_node<'a>(node: &'a Node, field: &str) -> Option<&'a Node> {
    match &node.kind {
        NodeKind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.name == field)
            .map(|(_, v)| v),
        _ => None,
    }
}

fn positive(value: u64, (location, path): (Location, String)) -> Result<(), NodeError> {
    if value == 0 {
        return Err(NodeError::new("must be greater than 0").at(location, &path));
    }
    Ok(())
}

/// Topology checks: every input exists and is not a sink, no cycles, at least one source and
/// one sink, every source reaches a sink.
fn validate(
    config: &Config,
    locations: &BTreeMap<String, Location>,
    root: &Node,
) -> Result<(), NodeError> {
    let top = Location { line: 1, column: 1 };
    if config.sources.is_empty() {
        return Err(NodeError::new("no sources configured")
            .at(top, "sources")
            .hint(
                "add a [sources.NAME] table, or generate a config with `sluice init --from <db>`",
            ));
    }
    if config.sinks.is_empty() {
        return Err(NodeError::new("no sinks configured").at(top, "sinks").hint(
            "add a [sinks.NAME] table, e.g. type = \"stdout\" with inputs = [\"<source>\"]",
        ));
    }
    let feeders: Vec<&str> = config
        .sources
        .keys()
        .chain(config.transforms.keys())
        .map(String::as_str)
        .collect();
    let consumers = config
        .transforms
        .iter()
        .map(|(n, t)| ("transforms", n, &t.inputs))
        .chain(config.sinks.iter().map(|(n, s)| ("sinks", n, &s.inputs)));
    for (section, name, inputs) in consumers {
        let path = format!("{section}.{name}.inputs");
        let loc = input_location(root, section, name).unwrap_or(locations[name.as_str()]);
        if inputs.is_empty() {
            return Err(NodeError::new("`inputs` is empty")
                .at(loc, &path)
                .hint(format!("name at least one of: {}", feeders.join(", "))));
        }
        for input in inputs {
            if config.sinks.contains_key(input) {
                return Err(NodeError::new(format!("input `{input}` is a sink"))
                    .at(loc, &path)
                    .hint("inputs name sources or transforms; sinks produce nothing"));
            }
            if !feeders.contains(&input.as_str()) {
                let mut e = NodeError::new(format!("input `{input}` does not exist"));
                e.hint = Some(match closest(input, &feeders) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("defined sources and transforms: {}", feeders.join(", ")),
                });
                return Err(e.at(loc, &path));
            }
        }
    }
    // Cycles among transforms: depth-first search with colours.
    let mut done = BTreeSet::new();
    for name in config.transforms.keys() {
        let mut stack = Vec::new();
        visit(config, name, &mut stack, &mut done).map_err(|cycle| {
            NodeError::new(format!("transforms form a cycle: {}", cycle.join(" -> "))).at(
                locations[name.as_str()],
                &format!("transforms.{name}.inputs"),
            )
        })?;
    }
    for name in config.sources.keys() {
        if !config.sinks.keys().any(|sink| reaches(config, name, sink)) {
            return Err(NodeError::new(format!("source `{name}` feeds no sink"))
                .at(locations[name.as_str()], &format!("sources.{name}"))
                .hint(format!(
                    "add \"{name}\" to the `inputs` of a sink, or remove the source"
                )));
        }
    }
    Ok(())
}

fn visit(
    config: &Config,
    name: &str,
    stack: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Result<(), Vec<String>> {
    if done.contains(name) {
        return Ok(());
    }
    if let Some(at) = stack.iter().position(|s| s == name) {
        let mut cycle = stack[at..].to_vec();
        cycle.push(name.to_owned());
        return Err(cycle);
    }
    let Some(t) = config.transforms.get(name) else {
        return Ok(());
    };
    stack.push(name.to_owned());
    for input in &t.inputs {
        visit(config, input, stack, done)?;
    }
    stack.pop();
    done.insert(name.to_owned());
    Ok(())
}

/// True when changes from component `from` reach sink `sink`.
pub fn reaches(config: &Config, from: &str, sink: &str) -> bool {
    let Some(s) = config.sinks.get(sink) else {
        return false;
    };
    let mut todo: Vec<&str> = s.inputs.iter().map(String::as_str).collect();
    let mut seen = BTreeSet::new();
    while let Some(n) = todo.pop() {
        if n == from {
            return true;
        }
        if seen.insert(n)
            && let Some(t) = config.transforms.get(n)
        {
            todo.extend(t.inputs.iter().map(String::as_str));
        }
    }
    false
}

fn input_location(root: &Node, section: &str, name: &str) -> Option<Location> {
    let s = field_node(root, section)?;
    let c = field_node(s, name)?;
    field_node(c, "inputs").map(|n| n.location)
}
