//! A walsender connection (`replication=database`) over TCP or a Unix socket: startup,
//! authentication (trust, cleartext, MD5, SCRAM-SHA-256), simple queries with text results,
//! and the CopyBoth stream of `START_REPLICATION`. No TLS yet.

use std::path::Path;

use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use sluice_config::model::PostgresSourceConfig;
use sluice_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::config::Host;

use super::lowat;
use super::protocol::{BackendMessage, Cursor, ServerError, frame_len, parse_error_fields};
use crate::conn::{CONNECT_TIMEOUT, SESSION_SETTINGS, parse_url, server_error, shown_url};
use crate::tls::{self, TlsParams};

/// The receive low-water mark while a backlog streams (see [`lowat`]).
const LOWAT_BYTES: usize = 64 * 1024;
/// A read at least this big means the server is sending faster than sluice wakes up: raise
/// the mark.
const LOWAT_TRIGGER: usize = 16 * 1024;
/// How long a read waits with the mark raised before it is lowered: the most a trickle
/// of changes arriving right after a backlog is delayed.
const LOWAT_WAIT: std::time::Duration = std::time::Duration::from_millis(1);
/// The receive buffer a replication stream asks for when the server is on the same host
/// (see [`lowat::set_rcvbuf`]); the kernel doubles it. Kept well above two loopback
/// segments (64 KB each): a window below one segment stalls the sender.
const SAME_HOST_RCVBUF: usize = 128 * 1024;
/// How long a same-host replication stream waits after a big read before the next one.
const PACE: std::time::Duration = std::time::Duration::from_millis(1);

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One walsender connection.
pub(crate) struct ReplicationConnection {
    stream: Box<dyn Stream>,
    buf: BytesMut,
    /// The TCP socket's low-water mark, when it can be set (TCP on Linux).
    lowat: Option<LowWater>,
    /// Pace reads (a same-host replication stream): after a read of at least
    /// [`LOWAT_TRIGGER`] bytes, the next read waits [`PACE`] first.
    paced: bool,
    /// The last read was big and reads are paced: wait before the next one.
    pace_next: bool,
    /// The URL without its password, for messages.
    shown: String,
    /// A walsender connection (else an ordinary one).
    replication: bool,
    /// The server's major version (15 for "15.8 (Debian ...)"), from its `server_version`
    /// parameter at startup; 0 when it did not say.
    server_major: u32,
}

impl std::fmt::Debug for ReplicationConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationConnection")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// Ask the server for TLS (`SSLRequest`) unless `sslmode=disable`, and wrap `s` in it when
/// the server agrees; refuse a server without TLS when the mode requires it.
async fn negotiate_tls(
    mut s: tokio::net::TcpStream,
    tls: &TlsParams,
    host: &str,
    shown: &str,
) -> Result<Box<dyn Stream>> {
    let Some(config) = tls.client_config()? else {
        return Ok(Box::new(s));
    };
    let lost = |e: std::io::Error| {
        Error::transient(format!("cannot connect to postgres at \"{shown}\": {e}")).with_source(e)
    };
    // Length 8, then the SSLRequest code 1234.5679.
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .map_err(lost)?;
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).await.map_err(lost)?;
    match answer[0] {
        b'S' => match tls::handshake(config, host, s).await {
            Ok(tls) => Ok(Box::new(tls)),
            Err(e) => {
                let text = tls::describe(&e);
                let message = format!("TLS with postgres at \"{shown}\" failed: {text}");
                if tls::is_permanent_tls_error(&e) {
                    Err(Error::permanent(message))
                } else {
                    Err(Error::transient(message).with_source(e))
                }
            }
        },
        b'N' if tls.mode.required() => Err(Error::permanent(format!(
            "postgres at \"{shown}\" does not offer TLS, which the url's sslmode requires (hint: enable ssl on the server, or set sslmode=prefer or disable)"
        ))),
        b'N' => Ok(Box::new(s)),
        other => Err(Error::permanent(format!(
            "postgres at \"{shown}\" answered the TLS request with byte {other:#04x} instead of S or N"
        ))),
    }
}

/// A duplicate of the TCP socket's descriptor, to set its `SO_RCVLOWAT`, and whether the
/// mark is raised.
struct LowWater {
    socket: std::os::fd::OwnedFd,
    raised: bool,
    /// The server is on this host (a loopback address, or the connection's own address):
    /// no wire between the two, so reads of a replication stream are paced (see
    /// [`ReplicationConnection::start_copy_both`]).
    same_host: bool,
}

/// Where [`ReplicationConnection::copy_out_data`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyOut {
    /// The handler asked to pause; more whole messages may be buffered.
    Paused,
    /// No whole message is buffered: read more.
    NeedMore,
    /// The COPY ended and the server is ready for the next query.
    Done,
}

/// Rows of a simple query, every value in text form.
pub(crate) type TextRows = Vec<Vec<Option<String>>>;

impl ReplicationConnection {
    /// Connect and authenticate, within [`CONNECT_TIMEOUT`].
    pub async fn connect(config: &PostgresSourceConfig) -> Result<Self> {
        Self::open(config, true).await
    }

    /// An ordinary (not walsender) connection over the same wire code, for reading the
    /// snapshot with `COPY` straight from the socket buffer.
    pub async fn connect_plain(config: &PostgresSourceConfig) -> Result<Self> {
        Self::open(config, false).await
    }

    async fn open(config: &PostgresSourceConfig, replication: bool) -> Result<Self> {
        let shown = shown_url(config);
        let what = if replication { "a replication" } else { "a" };
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            Self::connect_inner(config, shown.clone(), replication),
        )
        .await
        .map_err(|_| {
            Error::transient(format!(
                "opening {what} connection to \"{shown}\" timed out after {}s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
    }

    async fn connect_inner(
        config: &PostgresSourceConfig,
        shown: String,
        replication: bool,
    ) -> Result<Self> {
        let (pg, tls) = parse_url(config)?;
        let user = pg.get_user().map(str::to_owned).ok_or_else(|| {
            Error::permanent(format!(
                "postgres url \"{shown}\" names no user (hint: write postgres://user:password@host/database)"
            ))
        })?;
        let database = pg.get_dbname().map_or_else(|| user.clone(), str::to_owned);
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let io_error = |e: std::io::Error| {
            Error::transient(format!("cannot connect to postgres at \"{shown}\": {e}"))
                .with_source(e)
        };
        let (stream, lowat): (Box<dyn Stream>, _) = match pg.get_hosts().first() {
            #[cfg(unix)]
            Some(Host::Unix(dir)) => {
                // Over a Unix socket: no TLS (as libpq), no low-water mark.
                let path = Path::new(dir).join(format!(".s.PGSQL.{port}"));
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(io_error)?;
                (Box::new(s), None)
            }
            host => {
                let host = match host {
                    Some(Host::Tcp(host)) => host.clone(),
                    _ => "localhost".to_owned(),
                };
                let s = tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(io_error)?;
                s.set_nodelay(true).map_err(io_error)?;
                let lowat = if cfg!(target_os = "linux") {
                    use std::os::fd::AsFd;
                    let same_host = match (s.peer_addr(), s.local_addr()) {
                        (Ok(peer), Ok(local)) => peer.ip().is_loopback() || peer.ip() == local.ip(),
                        _ => false,
                    };
                    s.as_fd().try_clone_to_owned().ok().map(|socket| LowWater {
                        socket,
                        raised: false,
                        same_host,
                    })
                } else {
                    None
                };
                (negotiate_tls(s, &tls, &host, &shown).await?, lowat)
            }
        };
        let mut conn = ReplicationConnection {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            lowat,
            paced: false,
            pace_next: false,
            shown,
            replication,
            server_major: 0,
        };
        conn.startup(&user, &database, pg.get_password(), replication)
            .await?;
        Ok(conn)
    }

    /// The server's major version (15 for PostgreSQL 15.8); 0 when it did not say.
    pub fn server_major(&self) -> u32 {
        self.server_major
    }

    fn kind(&self) -> &'static str {
        if self.replication {
            "replication"
        } else {
            "snapshot"
        }
    }

    fn lost(&self, e: std::io::Error) -> Error {
        Error::transient(format!(
            "{} connection to \"{}\" was lost: {e}",
            self.kind(),
            self.shown
        ))
        .with_source(e)
    }

    fn protocol(&self, e: impl std::fmt::Display) -> Error {
        Error::permanent(format!(
            "{} connection to \"{}\": {e}",
            self.kind(),
            self.shown
        ))
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let result = self.stream.write_all(bytes).await;
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(self.lost(e)),
        }
    }

    async fn startup(
        &mut self,
        user: &str,
        database: &str,
        password: Option<&[u8]>,
        replication: bool,
    ) -> Result<()> {
        let mut params: Vec<(&str, &str)> = vec![
            ("user", user),
            ("database", database),
            ("application_name", "sluice"),
        ];
        if replication {
            params.push(("replication", "database"));
        }
        params.extend_from_slice(SESSION_SETTINGS);
        let mut out = BytesMut::new();
        frontend::startup_message(params.iter().copied(), &mut out)
            .map_err(|e| self.protocol(e))?;
        self.write(&out).await?;
        let shown = self.shown.clone();
        let need_password = || {
            Error::permanent(format!(
                "postgres at \"{shown}\" asks for a password for user \"{user}\" but the url has none (hint: write postgres://{user}:PASSWORD@..., e.g. with ${{PGPASSWORD}})"
            ))
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let m = self.recv().await?;
            match m.tag {
                b'R' => {
                    let mut c = Cursor::new(&m.body, "AuthenticationRequest");
                    let code = c.i32("the method").map_err(|e| self.protocol(e))?;
                    out.clear();
                    match code {
                        0 => {}
                        3 => {
                            let password = password.ok_or_else(need_password)?;
                            frontend::password_message(password, &mut out)
                                .map_err(|e| self.protocol(e))?;
                        }
                        5 => {
                            let password = password.ok_or_else(need_password)?;
                            let salt = c.take(4, "the salt").map_err(|e| self.protocol(e))?;
                            let hash = md5_hash(
                                user.as_bytes(),
                                password,
                                [salt[0], salt[1], salt[2], salt[3]],
                            );
                            frontend::password_message(hash.as_bytes(), &mut out)
                                .map_err(|e| self.protocol(e))?;
                        }
                        10 => {
                            let password = password.ok_or_else(need_password)?;
                            let mut mechanisms = Vec::new();
                            while let Ok(name) = c.cstr("a mechanism") {
                                if name.is_empty() {
                                    break;
                                }
                                mechanisms.push(name);
                            }
                            if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                                return Err(Error::permanent(format!(
                                    "postgres at \"{}\" offers SASL mechanisms {mechanisms:?}, none of which sluice supports (SCRAM-SHA-256)",
                                    self.shown
                                )));
                            }
                            let s = ScramSha256::new(password, ChannelBinding::unsupported());
                            frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)
                                .map_err(|e| self.protocol(e))?;
                            scram = Some(s);
                        }
                        11 | 12 => {
                            let Some(s) = scram.as_mut() else {
                                return Err(self.protocol("SASL message before SASL started"));
                            };
                            let data = c.rest();
                            if code == 11 {
                                s.update(data).map_err(|e| self.protocol(e))?;
                                frontend::sasl_response(s.message(), &mut out)
                                    .map_err(|e| self.protocol(e))?;
                            } else {
                                s.finish(data).map_err(|e| {
                                    Error::permanent(format!(
                                        "postgres at \"{}\" failed SCRAM verification: {e}",
                                        self.shown
                                    ))
                                })?;
                            }
                        }
                        other => {
                            return Err(Error::permanent(format!(
                                "postgres at \"{}\" asks for authentication method {other}, which sluice does not support (hint: use scram-sha-256, md5, password or trust in pg_hba.conf)",
                                self.shown
                            )));
                        }
                    }
                    if !out.is_empty() {
                        let bytes = out.split().freeze();
                        self.write(&bytes).await?;
                    }
                }
                b'E' => return Err(self.server_error("opening a replication connection", &m)),
                b'Z' => return Ok(()),
                b'S' => {
                    let mut c = Cursor::new(&m.body, "ParameterStatus");
                    if let (Ok(name), Ok(value)) = (c.cstr("a name"), c.cstr("a value"))
                        && name == "server_version"
                    {
                        self.server_major = major_version(&value);
                    }
                }
                // BackendKeyData, NoticeResponse.
                _ => {}
            }
        }
    }

    fn server_error(&self, what: &str, m: &BackendMessage) -> Error {
        match parse_error_fields(&m.body) {
            Ok(ServerError {
                code,
                message,
                detail,
                hint,
                ..
            }) => {
                let message = match detail {
                    Some(d) => format!("{message}: {d}"),
                    None => message,
                };
                server_error(
                    &format!("{what} on \"{}\"", self.shown),
                    &code,
                    &message,
                    hint.as_deref(),
                )
            }
            Err(e) => self.protocol(e),
        }
    }

    /// A whole message already in the buffer, if there is one.
    pub fn next_buffered(&mut self) -> Result<Option<BackendMessage>> {
        match frame_len(&self.buf).map_err(|e| self.protocol(e))? {
            Some(total) => {
                let mut frame = self.buf.split_to(total);
                let tag = frame[0];
                let body = frame.split_off(5).freeze();
                Ok(Some(BackendMessage { tag, body }))
            }
            None => Ok(None),
        }
    }

    /// Read more bytes from the server into the buffer. Cancel-safe: bytes are kept only
    /// when the read completes.
    ///
    /// A read that finds a lot queued raises the socket's low-water mark, so the next one
    /// is woken only once [`LOWAT_BYTES`] are there; if they do not come within
    /// [`LOWAT_WAIT`], the mark is lowered and the read takes whatever is queued.
    pub async fn fill(&mut self) -> Result<()> {
        if self.buf.capacity() - self.buf.len() < 8192 {
            self.buf.reserve(64 * 1024);
        }
        if self.pace_next {
            // Cleared first: a read cancelled during the wait is not paced twice.
            self.pace_next = false;
            tokio::time::sleep(PACE).await;
        }
        loop {
            let raised = self.lowat.as_ref().is_some_and(|l| l.raised);
            let read = if raised {
                tokio::select! {
                    read = self.stream.read_buf(&mut self.buf) => read,
                    _ = tokio::time::sleep(LOWAT_WAIT) => {
                        self.set_lowat(false)?;
                        continue;
                    }
                }
            } else {
                self.stream.read_buf(&mut self.buf).await
            };
            return match read {
                Ok(0) => Err(Error::transient(format!(
                    "{} connection to \"{}\" was closed by the server",
                    self.kind(),
                    self.shown
                ))),
                Ok(n) => {
                    self.pace_next = self.paced && n >= LOWAT_TRIGGER;
                    if !raised && n >= LOWAT_TRIGGER {
                        self.set_lowat(true)?;
                    }
                    Ok(())
                }
                Err(e) => Err(self.lost(e)),
            };
        }
    }

    /// Raise or lower the low-water mark. Failing to raise it only costs speed (the mark is
    /// left alone from then on); failing to lower it would stall the stream, so that ends
    /// the connection.
    fn set_lowat(&mut self, raise: bool) -> Result<()> {
        let Some(l) = self.lowat.as_mut() else {
            return Ok(());
        };
        match lowat::set(&l.socket, if raise { LOWAT_BYTES } else { 1 }) {
            Ok(()) => {
                l.raised = raise;
                Ok(())
            }
            Err(e) if raise => {
                tracing::debug!(error = %e, "cannot set SO_RCVLOWAT; reading without it");
                self.lowat = None;
                Ok(())
            }
            Err(e) => Err(self.lost(e)),
        }
    }

    async fn recv(&mut self) -> Result<BackendMessage> {
        loop {
            if let Some(m) = self.next_buffered()? {
                return Ok(m);
            }
            self.fill().await?;
        }
    }

    async fn send_query(&mut self, sql: &str) -> Result<()> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(|e| self.protocol(e))?;
        self.write(&out).await
    }

    /// Run a replication command or SQL statement; every row, values as text.
    pub async fn simple_query(&mut self, sql: &str, what: &str) -> Result<TextRows> {
        self.send_query(sql).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let m = self.recv().await?;
            match m.tag {
                b'D' => rows.push(self.data_row(&m.body)?),
                b'E' => error = Some(self.server_error(what, &m)),
                b'Z' => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    };
                }
                // RowDescription, CommandComplete, EmptyQueryResponse, notices.
                _ => {}
            }
        }
    }

    fn data_row(&self, body: &[u8]) -> Result<Vec<Option<String>>> {
        let mut c = Cursor::new(body, "DataRow");
        let count = c.i16("the column count").map_err(|e| self.protocol(e))?;
        let mut values = Vec::with_capacity(count.max(0) as usize);
        for _ in 0..count {
            let len = c.i32("a value length").map_err(|e| self.protocol(e))?;
            if len < 0 {
                values.push(None);
                continue;
            }
            let bytes = c
                .take(len as usize, "a value")
                .map_err(|e| self.protocol(e))?;
            values.push(Some(String::from_utf8_lossy(bytes).into_owned()));
        }
        Ok(values)
    }

    /// Send `START_REPLICATION ...` and wait for the CopyBoth response.
    ///
    /// When the server is on this host, the stream's reads are paced from here on: the
    /// socket's receive buffer is set to [`SAME_HOST_RCVBUF`] and a read that found at least
    /// [`LOWAT_TRIGGER`] bytes (a backlog, not a trickle) makes the next one wait [`PACE`].
    /// The walsender sends one small message per change, with `TCP_NODELAY`; a reader that
    /// takes each as it comes has every one cross loopback as a segment of its own, whose
    /// sending and receiving both run on the walsender's time. Paced, the window closes
    /// between reads, the messages queue behind it in the walsender's socket and leave as
    /// a few large segments: measured on a 400k-change backlog, the walsender's CPU time
    /// fell from ~2.1 to ~1.2 s and the drain from ~2.1 to ~1.4 s (docs/benchmarks.md,
    /// session 9). Over a real network the buffer is left to the kernel's autotuning (a
    /// fixed small window would cap throughput at window / round trip) and reads are not
    /// paced.
    pub async fn start_copy_both(&mut self, sql: &str, what: &str) -> Result<()> {
        if let Some(l) = self.lowat.as_ref().filter(|l| l.same_host) {
            match lowat::set_rcvbuf(&l.socket, SAME_HOST_RCVBUF) {
                Ok(()) => self.paced = true,
                Err(e) => tracing::debug!(error = %e, "cannot set SO_RCVBUF; reads not paced"),
            }
        }
        self.send_query(sql).await?;
        loop {
            let m = self.recv().await?;
            match m.tag {
                b'W' => return Ok(()),
                b'E' => return Err(self.server_error(what, &m)),
                b'Z' => {
                    return Err(
                        self.protocol(format!("{what}: the server did not start streaming"))
                    );
                }
                _ => {}
            }
        }
    }

    /// Send `COPY ... TO STDOUT` and wait for the server to start sending rows.
    pub async fn copy_out_start(&mut self, sql: &str, what: &str) -> Result<()> {
        self.send_query(sql).await?;
        loop {
            let m = self.recv().await?;
            match m.tag {
                b'H' => return Ok(()),
                b'E' => return Err(self.server_error(what, &m)),
                b'Z' => return Err(self.protocol(format!("{what}: the server sent no rows"))),
                _ => {}
            }
        }
    }

    /// Hand the payload of each whole CopyData message in the buffer to `data`, in place,
    /// until `data` returns false (pause: the rest stays buffered), the buffer holds no
    /// whole message (read more with [`Self::fill`]) or the COPY has ended and the
    /// connection is ready for the next query.
    pub fn copy_out_data(
        &mut self,
        what: &str,
        mut data: impl FnMut(&[u8]) -> bool,
    ) -> Result<CopyOut> {
        let mut at = 0;
        let mut state = CopyOut::NeedMore;
        let mut error = None;
        while let Some(total) = frame_len(&self.buf[at..]).map_err(|e| self.protocol(e))? {
            let frame = &self.buf[at..at + total];
            at += total;
            match frame[0] {
                b'd' if !data(&frame[5..]) => {
                    state = CopyOut::Paused;
                    break;
                }
                b'd' => {}
                b'E' => {
                    error = Some(BackendMessage {
                        tag: b'E',
                        body: bytes::Bytes::copy_from_slice(&frame[5..]),
                    });
                }
                b'Z' => {
                    state = CopyOut::Done;
                    break;
                }
                // CopyDone, CommandComplete, notices.
                _ => {}
            }
        }
        bytes::Buf::advance(&mut self.buf, at);
        match error {
            Some(m) => Err(self.server_error(what, &m)),
            None => Ok(state),
        }
    }

    /// Interpret one message of the CopyBoth stream: the CopyData payload, or an error for
    /// an ErrorResponse or the end of the stream. Other messages (notices) are `None`.
    pub fn copy_payload(&self, m: &BackendMessage) -> Result<Option<bytes::Bytes>> {
        match m.tag {
            b'd' => Ok(Some(m.body.clone())),
            b'E' => {
                let e = self.server_error("streaming changes", m);
                // The slot decodes with the catalog as of its position: a publication
                // dropped (even if made again) is gone for every change before the drop.
                if e.message().contains("SQLSTATE 42704") && e.message().contains("publication") {
                    return Err(Error::permanent(format!(
                        "{} (hint: the publication was dropped while the slot still had changes to decode; the slot cannot stream past that point even if the publication is made again. Recover with `sluice teardown -c ...`, delete the source's checkpoint, and `sluice run` to take a new snapshot)",
                        e.message()
                    )));
                }
                Err(e)
            }
            b'c' => Err(Error::transient(format!(
                "postgres at \"{}\" ended the replication stream",
                self.shown
            ))),
            _ => Ok(None),
        }
    }

    /// Send one CopyData message.
    pub async fn send_copy_data(&mut self, payload: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 5);
        out.push(b'd');
        out.extend_from_slice(&((payload.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(payload);
        self.write(&out).await?;
        let flushed = self.stream.flush().await;
        flushed.map_err(|e| self.lost(e))
    }
}

/// The major version in a `server_version` string: 15 for "15.8 (Debian 15.8-0+deb12u1)",
/// 17 for "17beta1"; 0 when it does not start with a number.
fn major_version(version: &str) -> u32 {
    let digits = version.bytes().take_while(u8::is_ascii_digit).count();
    version[..digits].parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::major_version;
    use crate::capture::protocol_version;

    #[test]
    fn server_versions_pick_the_protocol() {
        assert_eq!(major_version("15.8 (Debian 15.8-0+deb12u1)"), 15);
        assert_eq!(major_version("17beta1"), 17);
        assert_eq!(major_version("9.6.24"), 9);
        assert_eq!(major_version("x"), 0);
        assert_eq!(protocol_version(13, true), 1);
        assert_eq!(protocol_version(14, true), 2);
        assert_eq!(protocol_version(15, true), 3);
        assert_eq!(protocol_version(18, true), 3);
        assert_eq!(protocol_version(16, false), 1);
        assert_eq!(protocol_version(0, true), 1);
    }
}
