//! pgoutput messages into [`Change`]s: the relation cache, transaction metadata, the
//! lookahead that marks the last change of a transaction, and resumable positions.
//!
//! Positions: a change inside a transaction carries the end LSN of the last transaction
//! committed before it, and the transaction's last change carries the transaction's own end
//! LSN. Restarting from either replays the partial transaction instead of skipping it,
//! because the server resends every transaction whose commit lies after the start position.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sluice_config::model::PrimaryKeyChange;
use sluice_core::{
    Change, Error, Name, Op, PgLsn, Position, Result, Row, Schema, SchemaColumn, SourceBatch,
    TxMeta, Value,
};

use crate::catalog::Table;
use crate::pgoutput::{Cell, Message, OldTuple, Relation, ReplicaIdentity, Tuple};
use crate::types::names::builtin_type_name;
use crate::types::text_to_value_owned;

/// Prefix of the heartbeat messages sluice writes with `pg_logical_emit_message`.
pub(crate) const HEARTBEAT_PREFIX: &str = "sluice_heartbeat";

#[derive(Debug)]
struct Rel {
    table: Name,
    columns: Vec<(Name, u32)>,
    /// Indexes of the key columns in `columns`.
    key: Vec<usize>,
    captured: bool,
    /// For a table not captured at start: what to say (and the schema event to emit) at
    /// its first change. Not at its Relation message: under `publish_via_partition_root`
    /// the server describes a partition beside its partitioned table, and no change ever
    /// names the partition.
    unannounced: Option<Unannounced>,
}

#[derive(Debug)]
enum Unannounced {
    /// Captured from now on (the publication decides what is captured); its shape.
    Captured(NewShape),
    /// Published, not captured: its changes are skipped.
    Skipped,
}

/// A newly captured table's shape, recorded (and a schema event emitted when it differs
/// from the last one) at its first change.
type NewShape = (Vec<ColumnSig>, Schema);

/// A column as schema changes are detected: name, type OID, type modifier, and whether it
/// is part of the key.
type ColumnSig = (Name, u32, i32, bool);

/// A captured table as the catalog described it at start.
#[derive(Debug)]
struct Known {
    /// `schema.name` at start.
    name: String,
    /// Key columns (the primary key, or the identity index).
    key: Vec<Name>,
    /// Columns and their types at start, in order.
    columns: Vec<(Name, u32)>,
}

#[derive(Debug)]
struct Tx {
    id: String,
    commit_ts: Option<String>,
    ordinal: u64,
}

/// Turns decoded messages into batches of changes.
#[derive(Debug)]
pub(crate) struct Converter {
    source: Name,
    /// The captured tables as the catalog described them at start, by OID: a table renamed
    /// since is still captured (and named as the server names it now).
    known: HashMap<u32, Known>,
    /// The same tables by `schema.name`, for one dropped and made again under its name.
    known_names: HashMap<String, u32>,
    /// True when `tables` is unset, so the publication decides: a keyed table it publishes
    /// that was not there at start (dropped since, with changes still to replay) is
    /// captured too.
    follow_publication: bool,
    /// Old OIDs of tables dropped and created again: their changes are skipped.
    replaced: HashSet<u32>,
    /// Their names: a relation under one of them other than the captured table is skipped.
    replaced_names: HashSet<Name>,
    /// Relations whose changes are skipped, already reported once.
    skipped: HashSet<u32>,
    /// Relations some of whose changes were skipped in this run (not captured then).
    missed: HashSet<u32>,
    relations: HashMap<u32, Rel>,
    tx: Option<Tx>,
    /// The latest change, held back until we know whether it is its transaction's last.
    pending: Option<Change>,
    out: Vec<Change>,
    /// End LSN of the last committed transaction: where a restart resumes.
    committed: PgLsn,
    /// Position of the last batch taken.
    taken: PgLsn,
    /// How primary-key changes are emitted.
    key_change: PrimaryKeyChange,
    /// The last known columns of each captured table (from the catalog at start, then from
    /// Relation messages): a Relation that differs yields a schema event.
    shapes: HashMap<Name, Vec<ColumnSig>>,
    /// Type names by (OID, modifier), from the catalog at start.
    type_names: HashMap<(u32, i32), Arc<str>>,
    /// Names of non-built-in types, from Type messages.
    user_types: HashMap<u32, Arc<str>>,
}

impl Converter {
    pub fn new(source: Name, tables: &[Table], start: PgLsn) -> Self {
        Converter {
            source,
            known: tables
                .iter()
                .map(|t| {
                    let known = Known {
                        name: t.qualified(),
                        key: t.key.clone(),
                        columns: t.columns.iter().map(|c| (c.name, c.type_oid)).collect(),
                    };
                    (t.oid, known)
                })
                .collect(),
            known_names: tables.iter().map(|t| (t.qualified(), t.oid)).collect(),
            follow_publication: false,
            replaced: HashSet::new(),
            skipped: HashSet::new(),
            missed: HashSet::new(),
            replaced_names: HashSet::new(),
            relations: HashMap::new(),
            tx: None,
            pending: None,
            out: Vec::new(),
            committed: start,
            taken: start,
            key_change: PrimaryKeyChange::default(),
            shapes: tables
                .iter()
                .map(|t| {
                    let columns = t
                        .columns
                        .iter()
                        .map(|c| {
                            let key = t.key.contains(&c.name);
                            (c.name, c.type_oid, c.type_modifier, key)
                        })
                        .collect();
                    (Name::new(&t.qualified()), columns)
                })
                .collect(),
            type_names: tables
                .iter()
                .flat_map(|t| &t.columns)
                .map(|c| ((c.type_oid, c.type_modifier), c.type_name.clone()))
                .collect(),
            user_types: HashMap::new(),
        }
    }

    /// Skip the changes of these tables (dropped and created again since the checkpoint,
    /// under their old OIDs): the new table's rows, read after a truncate, replace them.
    /// So are those of any other table under such a name that is not the one captured now
    /// (created and dropped in between, which the record never knew).
    pub fn skipping_replaced(mut self, replaced: Vec<(String, u32)>) -> Self {
        for (table, oid) in replaced {
            // (Not warned about as tables the publication sends but sluice does not capture.)
            self.skipped.insert(oid);
            self.replaced.insert(oid);
            self.replaced_names.insert(Name::new(&table));
        }
        self
    }

    /// Capture keyed tables the publication sends that were not known at start (when
    /// `tables` is unset and the publication decides what is captured).
    pub fn following_publication(mut self, follow: bool) -> Self {
        self.follow_publication = follow;
        self
    }

    /// Emit primary-key changes as `mode` says.
    pub fn with_key_change(mut self, mode: PrimaryKeyChange) -> Self {
        self.key_change = mode;
        self
    }

    /// True between Begin and Commit.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// Changes ready to be taken (not counting the one held back).
    pub fn ready(&self) -> usize {
        self.out.len()
    }

    /// True when a batch would carry changes or move the position forward.
    pub fn has_progress(&self) -> bool {
        !self.out.is_empty() || self.committed > self.taken
    }

    /// Everything ready, at the position to resume from after it.
    pub fn take_batch(&mut self) -> SourceBatch {
        self.taken = self.committed;
        SourceBatch {
            changes: std::mem::take(&mut self.out),
            position: pg(self.committed),
        }
    }

    /// Nothing is in flight and the server has sent everything before `lsn` (an idle
    /// keepalive's WAL end): make `lsn` the resume position, so the next batch, empty,
    /// carries it to the checkpoint. False (and nothing changes) when a transaction is open,
    /// changes wait to be taken, or `lsn` is not ahead.
    pub fn idle_at(&mut self, lsn: PgLsn) -> bool {
        let idle = self.tx.is_none() && self.pending.is_none() && self.out.is_empty();
        if idle && lsn > self.committed {
            self.committed = lsn;
            true
        } else {
            false
        }
    }

    /// Feed one message, in stream order.
    pub fn handle(&mut self, message: Message) -> Result<()> {
        match message {
            Message::Begin { timestamp, xid, .. } => {
                self.tx = Some(Tx {
                    id: xid.to_string(),
                    commit_ts: timestamp.to_rfc3339(),
                    ordinal: 0,
                });
            }
            Message::Commit { end_lsn, .. } => {
                if let Some(mut last) = self.pending.take() {
                    if let Some(tx) = last.tx.as_mut() {
                        tx.last = true;
                    }
                    last.position = pg(end_lsn);
                    self.out.push(last);
                }
                self.committed = self.committed.max(end_lsn);
                self.tx = None;
            }
            Message::Relation(rel) => self.relation(rel),
            Message::Type {
                oid,
                namespace,
                name,
                ..
            } => {
                let qualified = if namespace.is_empty() || namespace == "public" {
                    name
                } else {
                    format!("{namespace}.{name}")
                };
                self.user_types.insert(oid, Arc::from(qualified));
            }
            Message::Insert { rel, new, .. } => {
                let Some(r) = self.captured(rel)? else {
                    return Ok(());
                };
                let after = row(r, new)?;
                let key = key_of(r, &after);
                let change = self.change(Op::Insert, rel, key, None, Some(after));
                self.push(change);
            }
            Message::Update { rel, old, new, .. } => {
                let Some(r) = self.captured(rel)? else {
                    return Ok(());
                };
                let mut after = row(r, new)?;
                let (before, old_key) = match old {
                    Some(OldTuple::Full(t)) => {
                        let before = row(r, t)?;
                        let k = key_of(r, &before);
                        (Some(before), Some(k))
                    }
                    Some(OldTuple::Key(t)) => (None, Some(key_of(r, &row(r, t)?))),
                    None => (None, None),
                };
                // Under REPLICA IDENTITY FULL the old row has the values of unchanged TOAST
                // columns: use them rather than pass `Unchanged` on.
                if let Some(b) = &before {
                    fill_unchanged(&mut after, b);
                }
                // After the fill: a key column may be an unchanged TOAST value.
                let key = key_of(r, &after);
                match old_key {
                    // A primary-key change: a delete of the old key and an insert of the new
                    // one (sinks that write by key do not keep the old row), or one update
                    // whose `before` names the old key, as configured.
                    Some(old_key) if old_key != key => match self.key_change {
                        PrimaryKeyChange::DeleteInsert => {
                            let delete = self.change(Op::Delete, rel, old_key, before, None);
                            self.push(delete);
                            let insert = self.change(Op::Insert, rel, key, None, Some(after));
                            self.push(insert);
                        }
                        PrimaryKeyChange::Update => {
                            let before = before.unwrap_or(old_key);
                            let update =
                                self.change(Op::Update, rel, key, Some(before), Some(after));
                            self.push(update);
                        }
                    },
                    _ => {
                        let update = self.change(Op::Update, rel, key, before, Some(after));
                        self.push(update);
                    }
                }
            }
            Message::Delete { rel, old, .. } => {
                let Some(r) = self.captured(rel)? else {
                    return Ok(());
                };
                let (key, before) = match old {
                    OldTuple::Full(t) => {
                        let before = row(r, t)?;
                        (key_of(r, &before), Some(before))
                    }
                    OldTuple::Key(t) => (key_of(r, &row(r, t)?), None),
                };
                let change = self.change(Op::Delete, rel, key, before, None);
                self.push(change);
            }
            Message::Truncate { rels, .. } => {
                for rel in rels {
                    if self.captured(rel)?.is_some() {
                        let change = self.change(Op::Truncate, rel, Row::default(), None, None);
                        self.push(change);
                    }
                }
            }
            // Heartbeats and other logical messages, and origins, carry no row changes.
            Message::Message { .. } | Message::Origin { .. } => {}
            other => {
                return Err(Error::permanent(format!(
                    "pgoutput sent a {} message, which sluice does not ask for",
                    other.kind()
                )));
            }
        }
        Ok(())
    }

    fn relation(&mut self, rel: Relation) {
        let table = Name::new(&format!("{}.{}", rel.namespace, rel.name));
        let columns: Vec<(Name, u32)> = rel
            .columns
            .iter()
            .map(|c| (Name::new(&c.name), c.type_oid))
            .collect();
        let index = |name: &str| columns.iter().position(|(c, _)| &**c == name);
        self.follow_key_renames(rel.oid, &columns);
        // Which table this is: by OID (renames keep it), else by name (made again), unless
        // it is the old table of one made again, whose rows were replaced.
        // Under a replaced name only: a replaced OID still captured under another name was
        // renamed, and its changes since carry the new name.
        let replaced = self.replaced_names.contains(&table)
            && (self.replaced.contains(&rel.oid) || !self.known.contains_key(&rel.oid));
        let known = self.known.get(&rel.oid).or_else(|| {
            self.known_names
                .get(&*table)
                .and_then(|oid| self.known.get(oid))
        });
        let known = known.filter(|_| !replaced);
        let flagged: Vec<usize> = rel
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.key)
            .map(|(i, _)| i)
            .collect();
        let keyed = match rel.replica_identity {
            ReplicaIdentity::Full => true,
            // pgoutput flags the identity index's columns only when the server can use it
            // (a dropped index leaves `i` with none): the catalog's rule too.
            ReplicaIdentity::Default | ReplicaIdentity::Index => !flagged.is_empty(),
            ReplicaIdentity::Nothing => false,
        };
        let captured = !replaced && (known.is_some() || (self.follow_publication && keyed));
        if let Some(k) = known
            && k.name != *table
        {
            tracing::info!(source = %self.source, from = %k.name, to = %table, "captured table renamed: its changes now carry the new name");
        }
        // The key: what the server flags now (the primary key, or the identity index, so a
        // key replaced mid-stream is followed); under REPLICA IDENTITY FULL every column is
        // flagged, so the primary key known at start, if its columns are all there.
        let mut key: Vec<usize> = match rel.replica_identity {
            ReplicaIdentity::Full => {
                let pk: Vec<usize> = known
                    .map(|k| k.key.iter().filter_map(|c| index(c)).collect())
                    .unwrap_or_default();
                if known.is_some_and(|k| !k.key.is_empty() && pk.len() == k.key.len()) {
                    pk
                } else {
                    Vec::new()
                }
            }
            _ if !flagged.is_empty() => flagged,
            _ => known
                .map(|k| k.key.iter().filter_map(|c| index(c)).collect())
                .unwrap_or_default(),
        };
        if key.is_empty() {
            key = (0..columns.len()).collect();
        }
        let signature: Vec<ColumnSig> = rel
            .columns
            .iter()
            .zip(&columns)
            .enumerate()
            .map(|(i, (c, (name, _)))| (*name, c.type_oid, c.type_modifier, key.contains(&i)))
            .collect();
        let shape = |this: &Self| Schema {
            columns: rel
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| SchemaColumn {
                    name: columns[i].0,
                    type_name: this.type_name(c.type_oid, c.type_modifier),
                    key: key.contains(&i),
                })
                .collect(),
        };
        if known.is_none() {
            // Said, and its shape recorded, at its first change (see `Rel::unannounced`).
            let unannounced = if captured {
                Some(Unannounced::Captured((signature, shape(self))))
            } else {
                Some(Unannounced::Skipped)
            };
            self.relations.insert(
                rel.oid,
                Rel {
                    table,
                    columns,
                    key,
                    captured,
                    unannounced,
                },
            );
            return;
        }
        let schema = (self.shapes.get(&table) != Some(&signature)).then(|| shape(self));
        self.shapes.insert(table, signature);
        self.relations.insert(
            rel.oid,
            Rel {
                table,
                columns,
                key,
                captured,
                unannounced: None,
            },
        );
        // The new shape comes before the first change that uses it.
        if let Some(schema) = schema {
            let mut change = self.change(Op::Schema, rel.oid, Row::default(), None, None);
            change.schema = Some(Arc::new(schema));
            self.push(change);
        }
    }

    /// A type's name: as the catalog spelled it at start, as a built-in, as a Type message
    /// named it, else by OID.
    fn type_name(&self, oid: u32, typmod: i32) -> Arc<str> {
        if let Some(name) = self.type_names.get(&(oid, typmod)) {
            return name.clone();
        }
        if let Some(name) = builtin_type_name(oid, typmod) {
            return Arc::from(name);
        }
        if let Some(name) = self.user_types.get(&oid) {
            return name.clone();
        }
        Arc::from(format!("oid {oid}"))
    }

    /// Key columns of a table known at start that were renamed since its last description:
    /// a key name gone from `columns`, whose place in the last description now holds a
    /// column of the same type under a name that was not there before, is that column.
    /// (Under REPLICA IDENTITY FULL the server flags every column, so the key is followed
    /// by name.)
    fn follow_key_renames(&mut self, oid: u32, columns: &[(Name, u32)]) {
        let Some(known) = self.known.get_mut(&oid) else {
            return;
        };
        // The first description since start: the changes replayed from the checkpoint may
        // predate a rename (the catalog read at start has the new name). Same column types
        // in the same order: the key is where it was.
        let Some(last) = self.relations.get(&oid) else {
            let same_shape = known.columns.len() == columns.len()
                && known
                    .columns
                    .iter()
                    .zip(columns)
                    .all(|((_, a), (_, b))| a == b);
            if same_shape {
                for key in &mut known.key {
                    if columns.iter().any(|(c, _)| c == key) {
                        continue;
                    }
                    if let Some(i) = known.columns.iter().position(|(c, _)| c == key)
                        && let Some((then, _)) = columns.get(i)
                        && !known.columns.iter().any(|(c, _)| c == then)
                    {
                        *key = *then;
                    }
                }
            }
            return;
        };
        for key in &mut known.key {
            if columns.iter().any(|(c, _)| c == key) {
                continue;
            }
            let Some(i) = last.columns.iter().position(|(c, _)| c == key) else {
                continue;
            };
            if let (Some((new, ty)), Some((_, old_ty))) = (columns.get(i), last.columns.get(i))
                && ty == old_ty
                && !last.columns.iter().any(|(c, _)| c == new)
            {
                *key = *new;
            }
        }
    }

    /// The relation's first change: say what `relation` held back for a table not captured
    /// at start, and emit its schema event when its shape is new. A table whose earlier
    /// changes this run skipped (published without a key, say, then given one) cannot be
    /// captured from here on: its rows would lack those changes. A transient error restarts
    /// the source, whose start captures it and reads its rows.
    fn announce(&mut self, oid: u32) -> Result<()> {
        let Some(rel) = self.relations.get_mut(&oid) else {
            return Ok(());
        };
        let Some(what) = rel.unannounced.take() else {
            return Ok(());
        };
        let table = rel.table;
        match what {
            Unannounced::Captured(_) if self.missed.contains(&oid) => {
                return Err(Error::transient(format!(
                    "table \"{table}\", whose earlier changes were skipped (it was not captured then: no key), is captured now; restarting the source so that its rows are read first"
                )));
            }
            Unannounced::Skipped => {
                // (Replaced tables' changes are skipped on purpose: their rows are read.)
                if !self.replaced.contains(&oid) {
                    self.missed.insert(oid);
                }
                if self.skipped.insert(oid) {
                    tracing::warn!(source = %self.source, table = %table, oid, "the publication sends changes to a table sluice does not capture: they are skipped (hint: list it in `tables`, or remove it from the publication)");
                }
            }
            Unannounced::Captured((signature, schema)) => {
                if self.skipped.insert(oid) {
                    tracing::info!(source = %self.source, table = %table, oid, "capturing a table the publication sends that was not captured at start");
                }
                if self.shapes.get(&table) != Some(&signature) {
                    self.shapes.insert(table, signature);
                    let mut change = self.change(Op::Schema, oid, Row::default(), None, None);
                    change.schema = Some(Arc::new(schema));
                    self.push(change);
                }
            }
        }
        Ok(())
    }

    /// The relation of a change, when captured; announces it first (see [`Self::announce`]).
    fn captured(&mut self, oid: u32) -> Result<Option<&Rel>> {
        if self
            .relations
            .get(&oid)
            .is_some_and(|r| r.unannounced.is_some())
        {
            self.announce(oid)?;
        }
        match self.relations.get(&oid) {
            Some(r) if r.captured => Ok(Some(r)),
            Some(_) => Ok(None),
            None => Err(Error::permanent(format!(
                "pgoutput sent a change to relation {oid} before describing it"
            ))),
        }
    }

    fn change(
        &mut self,
        op: Op,
        rel: u32,
        key: Row,
        before: Option<Row>,
        after: Option<Row>,
    ) -> Change {
        let table = self
            .relations
            .get(&rel)
            .map_or_else(|| Name::new(""), |r| r.table);
        let tx = self.tx.as_mut().map(|tx| {
            let meta = TxMeta {
                id: tx.id.clone(),
                commit_ts: tx.commit_ts.clone(),
                ordinal: tx.ordinal,
                last: false,
            };
            tx.ordinal += 1;
            meta
        });
        Change {
            op,
            source: self.source,
            table,
            key,
            before,
            after,
            position: pg(self.committed),
            tx,
            schema: None,
        }
    }

    fn push(&mut self, change: Change) {
        if let Some(previous) = self.pending.replace(change) {
            self.out.push(previous);
        }
    }
}

fn pg(lsn: PgLsn) -> Position {
    Position::Pg {
        lsn,
        snapshot: false,
        progress: None,
    }
}

/// The tuple's cells as a row, moving their text into the values where it can.
fn row(rel: &Rel, tuple: Tuple) -> Result<Row> {
    if tuple.cells.len() != rel.columns.len() {
        return Err(Error::permanent(format!(
            "pgoutput sent {} columns for table \"{}\", whose relation message has {}",
            tuple.cells.len(),
            rel.table,
            rel.columns.len()
        )));
    }
    Ok(rel
        .columns
        .iter()
        .zip(tuple.cells)
        .map(|((name, type_oid), cell)| (*name, cell_value(*type_oid, cell)))
        .collect())
}

/// A tuple cell as a value. Binary cells never arrive (sluice does not ask for `binary`);
/// should one, its bytes are kept.
pub(crate) fn cell_value(type_oid: u32, cell: Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Unchanged => Value::Unchanged,
        Cell::Text(text) => text_to_value_owned(type_oid, text),
        Cell::Binary(bytes) => Value::Bytes(bytes),
    }
}

fn key_of(rel: &Rel, row: &Row) -> Row {
    rel.key
        .iter()
        .filter_map(|&i| row.0.get(i).cloned())
        .collect()
}

/// Replace `Unchanged` cells of `after` with the value of the same column in `before`.
fn fill_unchanged(after: &mut Row, before: &Row) {
    for (column, value) in after.0.iter_mut() {
        if *value == Value::Unchanged
            && let Some(old) = before.get(column)
            && *old != Value::Unchanged
        {
            *value = old.clone();
        }
    }
}
