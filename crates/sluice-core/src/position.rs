//! Typed source positions.
//!
//! Each source kind has its own position type, totally ordered within that kind, printable
//! and serialisable. [`Position`] is the tagged union the engine stores in checkpoints and puts
//! on every event; comparing positions of different kinds is meaningless and yields `None`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A position in some source's change history: where to resume after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Position {
    /// SQLite trigger changelog position.
    Sqlite(SqlitePosition),
    /// PostgreSQL WAL position.
    Pg {
        /// Log sequence number: streaming resumes with transactions committed after it.
        lsn: PgLsn,
        /// True while the initial snapshot taken at `lsn` (the slot's consistent point) is
        /// still being read; a restart from it reads the snapshot again. Absent in JSON when
        /// false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        snapshot: bool,
        /// How far an interrupted snapshot had got (only while `snapshot` is true): a restart
        /// skips what it says is delivered. Absent in JSON when `None` (no progress recorded:
        /// read every table).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<PgSnapshotProgress>,
    },
}

/// Progress of a PostgreSQL snapshot: every row of the tables before `table` (in the order
/// the snapshot reads them) and of pages `0..page` of table `table` has been delivered.
///
/// `filenode` is that table's file (`pg_relation_filenode`) when the progress was recorded:
/// rows keep their page until the table is rewritten (`VACUUM FULL`, `CLUSTER`, `TRUNCATE`,
/// some `ALTER TABLE`s), which gives it a new file, and a restart then reads the table from
/// its first page again.
///
/// Ordered by `table`, then `page` (then `filenode`, only to make the order total).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgSnapshotProgress {
    /// Index of the table being read, in the snapshot's table order.
    pub table: u32,
    /// First page of that table not yet delivered.
    pub page: u64,
    /// The table's file node when `page` was recorded (0 when `page` is 0).
    pub filenode: u32,
}

impl fmt::Display for PgSnapshotProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table {} page {}", self.table, self.page)
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Position::Sqlite(a), Position::Sqlite(b)) => Some(a.cmp(b)),
            // A snapshot in progress at `lsn` comes before streaming from `lsn`, and within
            // it, more progress is later.
            (
                Position::Pg {
                    lsn: a,
                    snapshot: sa,
                    progress: pa,
                },
                Position::Pg {
                    lsn: b,
                    snapshot: sb,
                    progress: pb,
                },
            ) => Some(a.cmp(b).then_with(|| sb.cmp(sa)).then_with(|| pa.cmp(pb))),
            _ => None,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Sqlite(p) => write!(f, "sqlite {p}"),
            Position::Pg {
                lsn,
                snapshot: false,
                ..
            } => write!(f, "lsn {lsn}"),
            Position::Pg {
                lsn,
                snapshot: true,
                progress: None,
            } => write!(f, "snapshot@lsn {lsn}"),
            Position::Pg {
                lsn,
                snapshot: true,
                progress: Some(p),
            } => write!(f, "snapshot@lsn {lsn} {p}"),
        }
    }
}

/// Position in a SQLite source: a changelog sequence number, plus whether the initial
/// snapshot taken at that sequence number is still in progress.
///
/// While `snapshot` is true, `seq` is the changelog high-water mark read in the same read
/// transaction as the snapshot: streaming resumes with changelog rows after `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlitePosition {
    /// Last changelog sequence number covered.
    pub seq: i64,
    /// True while the initial snapshot is still being read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
}

impl Ord for SqlitePosition {
    fn cmp(&self, other: &Self) -> Ordering {
        // A snapshot in progress at `seq` comes before the finished snapshot at `seq`.
        self.seq
            .cmp(&other.seq)
            .then_with(|| other.snapshot.cmp(&self.snapshot))
    }
}

impl PartialOrd for SqlitePosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SqlitePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.snapshot {
            write!(f, "snapshot@{}", self.seq)
        } else {
            write!(f, "seq {}", self.seq)
        }
    }
}

/// A PostgreSQL log sequence number, printed as `XXXXXXXX/XXXXXXXX` like the server does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgLsn(pub u64);

impl fmt::Display for PgLsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The text was not an LSN of the form `16/B374D848`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {0:?}: expected two hexadecimal numbers separated by '/', like 16/B374D848")]
pub struct ParseLsnError(String);

impl FromStr for PgLsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseLsnError(s.to_owned());
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let ok =
            |p: &str| !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok(hi) || !ok(lo) {
            return Err(err());
        }
        let hi = u64::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(PgLsn((hi << 32) | lo))
    }
}

impl Serialize for PgLsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PgLsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lsn_prints_like_postgres() {
        assert_eq!(PgLsn(0x16_B374_D848).to_string(), "16/B374D848");
        assert_eq!("0/16B3748".parse::<PgLsn>(), Ok(PgLsn(0x16B3748)));
        for bad in ["", "/", "1/", "x/1", "1/2/3", "123456789/0", " 1/2"] {
            assert!(bad.parse::<PgLsn>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn positions_serialise_tagged() {
        let p = Position::Sqlite(SqlitePosition {
            seq: 42,
            snapshot: true,
        });
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"kind":"sqlite","seq":42,"snapshot":true}"#);
        let p = Position::Pg {
            lsn: PgLsn(0x1_0000_0001),
            snapshot: false,
            progress: None,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"kind":"pg","lsn":"1/1"}"#
        );
        let p: Position = serde_json::from_str(r#"{"kind":"pg","lsn":"0/16B3748"}"#).unwrap();
        assert_eq!(
            p,
            Position::Pg {
                lsn: PgLsn(0x16B3748),
                snapshot: false,
                progress: None,
            }
        );
        let snap = Position::Pg {
            lsn: PgLsn(0x16B3748),
            snapshot: true,
            progress: None,
        };
        assert_eq!(
            serde_json::to_string(&snap).unwrap(),
            r#"{"kind":"pg","lsn":"0/16B3748","snapshot":true}"#
        );
        assert!(snap < p);
        let chunked = Position::Pg {
            lsn: PgLsn(0x16B3748),
            snapshot: true,
            progress: Some(PgSnapshotProgress {
                table: 1,
                page: 4096,
                filenode: 16384,
            }),
        };
        assert_eq!(
            serde_json::to_string(&chunked).unwrap(),
            r#"{"kind":"pg","lsn":"0/16B3748","snapshot":true,"progress":{"table":1,"page":4096,"filenode":16384}}"#
        );
        assert_eq!(
            chunked.to_string(),
            "snapshot@lsn 0/16B3748 table 1 page 4096"
        );
        assert!(snap < chunked && chunked < p);
        assert!(serde_json::from_str::<Position>(r#"{"kind":"pg","lsn":"zz"}"#).is_err());
        assert!(serde_json::from_str::<Position>(r#"{"kind":"sqlite","seq":1,"x":1}"#).is_err());
    }

    #[test]
    fn snapshot_precedes_stream_at_same_seq() {
        let snap = SqlitePosition {
            seq: 5,
            snapshot: true,
        };
        let done = SqlitePosition {
            seq: 5,
            snapshot: false,
        };
        assert!(snap < done);
        assert!(
            done < SqlitePosition {
                seq: 6,
                snapshot: true
            }
        );
    }

    fn pg_progress() -> impl Strategy<Value = Option<PgSnapshotProgress>> {
        proptest::option::of(
            (0u32..4, 0u64..4, 0u32..3).prop_map(|(table, page, filenode)| PgSnapshotProgress {
                table,
                page,
                filenode,
            }),
        )
    }

    proptest! {
        #[test]
        fn lsn_text_round_trips(v in any::<u64>()) {
            let text = PgLsn(v).to_string();
            prop_assert_eq!(text.parse::<PgLsn>(), Ok(PgLsn(v)));
        }

        #[test]
        fn lsn_order_matches_integer_order(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(PgLsn(a).cmp(&PgLsn(b)), a.cmp(&b));
        }

        #[test]
        fn lsn_parser_never_panics(s in ".{0,24}") {
            let _ = s.parse::<PgLsn>();
        }

        #[test]
        fn position_json_round_trips(seq in any::<i64>(), snapshot in any::<bool>(), lsn in any::<u64>(), progress in pg_progress()) {
            for p in [Position::Sqlite(SqlitePosition { seq, snapshot }), Position::Pg { lsn: PgLsn(lsn), snapshot, progress }] {
                let back: Position = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
                prop_assert_eq!(back, p);
            }
        }

        #[test]
        fn pg_order_is_total_and_consistent(
            a in (any::<u64>(), any::<bool>(), pg_progress()),
            b in (any::<u64>(), any::<bool>(), pg_progress()),
            c in (any::<u64>(), any::<bool>(), pg_progress()),
        ) {
            let pg = |(lsn, snapshot, progress): (u64, bool, Option<PgSnapshotProgress>)| Position::Pg { lsn: PgLsn(lsn % 4), snapshot, progress };
            let (pa, pb, pc) = (pg(a), pg(b), pg(c));
            let ab = pa.partial_cmp(&pb);
            prop_assert!(ab.is_some());
            prop_assert_eq!(ab, pb.partial_cmp(&pa).map(Ordering::reverse));
            prop_assert_eq!(ab == Some(Ordering::Equal), pa == pb);
            if pa <= pb && pb <= pc {
                prop_assert!(pa <= pc);
            }
            // Streaming from an LSN comes after every snapshot position at that LSN.
            if let (Position::Pg { lsn: la, snapshot: true, .. }, Position::Pg { lsn: lb, snapshot: false, .. }) = (&pa, &pb)
                && la == lb
            {
                prop_assert!(pa < pb);
            }
        }

        #[test]
        fn sqlite_order_is_total_and_consistent(a in any::<(i64, bool)>(), b in any::<(i64, bool)>()) {
            let pa = SqlitePosition { seq: a.0, snapshot: a.1 };
            let pb = SqlitePosition { seq: b.0, snapshot: b.1 };
            prop_assert_eq!(pa.cmp(&pb), pb.cmp(&pa).reverse());
            prop_assert_eq!(pa.cmp(&pb) == Ordering::Equal, pa == pb);
        }
    }
}
