//! The streaming replication transport: a walsender connection of our own, because no
//! published crate speaks CopyBoth completely (see `DEPENDENCIES.md`).

mod connection;
mod lowat;
pub(crate) mod protocol;

pub(crate) use connection::{CopyOut, ReplicationConnection};
pub(crate) use protocol::{ReplicationMessage, parse_replication_message, standby_status_update};
