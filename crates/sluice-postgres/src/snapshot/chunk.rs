//! Snapshot chunks: ranges of table pages, their order, and the progress a finished chunk
//! records. Pure: the pages and file nodes come from the caller.

use sluice_core::PgSnapshotProgress;

/// A range of one table's pages, `start..end`, or `start..` for the last chunk of a table
/// (open-ended, so pages added since the table's size was read are read too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Index of the table in the snapshot's table order.
    pub table: u32,
    pub start: u64,
    pub end: Option<u64>,
    /// The table's file node when the plan was made.
    pub filenode: u32,
}

/// What the snapshot knows about a table's storage before reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    /// `pg_relation_size / block_size` (0 for a partitioned table, read in one chunk).
    pub pages: u64,
    /// `pg_relation_filenode`.
    pub filenode: u32,
}

/// The chunks still to read, in the order they are emitted: tables in order, pages
/// ascending, `chunk_pages` pages each (at least 1), the last chunk of every table
/// open-ended. With `resume`, tables before `resume.table` are skipped, and that table
/// starts at `resume.page` if its file node is still `resume.filenode` (else it was
/// rewritten, its rows may have moved, and it is read from its first page).
pub(crate) fn plan(
    extents: &[Extent],
    resume: Option<PgSnapshotProgress>,
    chunk_pages: u64,
) -> Vec<Chunk> {
    let step = chunk_pages.max(1);
    let mut chunks = Vec::new();
    for (t, extent) in extents.iter().enumerate() {
        let Ok(table) = u32::try_from(t) else {
            break;
        };
        let mut start = 0;
        if let Some(r) = resume {
            if table < r.table {
                continue;
            }
            if table == r.table && r.filenode == extent.filenode {
                start = r.page;
            }
        }
        loop {
            let next = start.saturating_add(step);
            if next >= extent.pages {
                chunks.push(Chunk {
                    table,
                    start,
                    end: None,
                    filenode: extent.filenode,
                });
                break;
            }
            chunks.push(Chunk {
                table,
                start,
                end: Some(next),
                filenode: extent.filenode,
            });
            start = next;
        }
    }
    chunks
}

impl Chunk {
    /// The progress of a snapshot about to read this chunk.
    pub fn before(&self) -> PgSnapshotProgress {
        PgSnapshotProgress {
            table: self.table,
            page: self.start,
            filenode: if self.start == 0 { 0 } else { self.filenode },
        }
    }

    /// The progress of a snapshot that has delivered this chunk whole.
    pub fn after(&self) -> PgSnapshotProgress {
        match self.end {
            Some(end) => PgSnapshotProgress {
                table: self.table,
                page: end,
                filenode: self.filenode,
            },
            None => PgSnapshotProgress {
                table: self.table.saturating_add(1),
                page: 0,
                filenode: 0,
            },
        }
    }

    /// The `WHERE` clause selecting the chunk's rows by `ctid` (a TID range scan from
    /// PostgreSQL 14 on) and by the publication's `row_filter`, empty for a whole table
    /// without one.
    pub fn filter(&self, row_filter: Option<&str>) -> String {
        let mut conditions = Vec::new();
        if let Some(f) = row_filter {
            conditions.push(format!("({f})"));
        }
        if self.start > 0 {
            conditions.push(format!("ctid >= '({},0)'::tid", self.start));
        }
        if let Some(end) = self.end {
            conditions.push(format!("ctid < '({end},0)'::tid"));
        }
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(chunks: &[Chunk]) -> Vec<(u32, u64, Option<u64>)> {
        chunks.iter().map(|c| (c.table, c.start, c.end)).collect()
    }

    const A: Extent = Extent {
        pages: 10,
        filenode: 100,
    };
    const EMPTY: Extent = Extent {
        pages: 0,
        filenode: 200,
    };

    #[test]
    fn tables_in_order_last_chunk_open() {
        let chunks = plan(&[A, EMPTY], None, 4);
        assert_eq!(
            ranges(&chunks),
            [(0, 0, Some(4)), (0, 4, Some(8)), (0, 8, None), (1, 0, None)]
        );
        assert_eq!(chunks[0].filter(None), " WHERE ctid < '(4,0)'::tid");
        assert_eq!(
            chunks[1].filter(None),
            " WHERE ctid >= '(4,0)'::tid AND ctid < '(8,0)'::tid"
        );
        assert_eq!(chunks[2].filter(None), " WHERE ctid >= '(8,0)'::tid");
        assert_eq!(chunks[3].filter(None), "");
        assert_eq!(
            chunks[1].filter(Some("a > 1")),
            " WHERE (a > 1) AND ctid >= '(4,0)'::tid AND ctid < '(8,0)'::tid"
        );
        assert_eq!(chunks[3].filter(Some("a > 1")), " WHERE (a > 1)");
        // An exact multiple does not leave an empty open chunk behind a closed one.
        assert_eq!(
            ranges(&plan(&[Extent { pages: 8, ..A }], None, 4)),
            [(0, 0, Some(4)), (0, 4, None)]
        );
    }

    #[test]
    fn progress_is_monotonic_and_chains() {
        let chunks = plan(&[A, EMPTY, A], None, 3);
        for pair in chunks.windows(2) {
            assert!(pair[0].before() < pair[0].after());
            assert_eq!(pair[0].after(), pair[1].before());
        }
    }

    #[test]
    fn resume_skips_what_was_delivered() {
        let done = plan(&[A, EMPTY, A], None, 4)[1].after();
        assert_eq!(
            ranges(&plan(&[A, EMPTY, A], Some(done), 4)),
            [
                (0, 8, None),
                (1, 0, None),
                (2, 0, Some(4)),
                (2, 4, Some(8)),
                (2, 8, None)
            ]
        );
        // The table grew since: the chunk size and start are kept, the end is open.
        let grown = Extent { pages: 30, ..A };
        assert_eq!(
            ranges(&plan(&[grown], Some(done), 10)),
            [(0, 8, Some(18)), (0, 18, Some(28)), (0, 28, None)]
        );
        // Rewritten (new file node): from its first page.
        let rewritten = Extent { filenode: 101, ..A };
        assert_eq!(
            ranges(&plan(&[rewritten], Some(done), 8))[0],
            (0, 0, Some(8))
        );
        // Finished tables are skipped whatever their file node.
        let next_table = plan(&[A, EMPTY], None, 4)[2].after();
        assert_eq!(
            ranges(&plan(&[A, EMPTY], Some(next_table), 4)),
            [(1, 0, None)]
        );
    }
}
