//! TLS for every PostgreSQL connection (ordinary ones through `tokio-postgres`, and the
//! walsender connection of [`crate::replication`]), with rustls and libpq's meaning of the
//! `sslmode`, `sslrootcert`, `sslcert` and `sslkey` URL parameters:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | when the server offers TLS | no |
//! | `require` | always | no, unless `sslrootcert` is set (then as `verify-ca`) |
//! | `verify-ca` | always | signed by a root in `sslrootcert` |
//! | `verify-full` | always | as `verify-ca`, and issued for the host in the URL |
//!
//! `sslrootcert` is a PEM file or `system` (the operating system's roots); unset, the
//! verifying modes look for `~/.postgresql/root.crt` as libpq does. `sslcert` and `sslkey`
//! (PEM) present a client certificate. `allow` is treated as `prefer`. TLS is not used on
//! Unix sockets.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use sluice_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Whether a server without TLS is refused.
    pub fn required(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// What `tokio-postgres` is told (it knows only these three).
    fn for_tokio_postgres(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as T;
        match self {
            SslMode::Disable => T::Disable,
            SslMode::Prefer => T::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => T::Require,
        }
    }
}

/// The TLS parameters of a source's URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub mode: SslMode,
    pub root_cert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// The parameters `tokio-postgres` does not take (or takes with fewer values), removed from
/// `url` and returned beside what is left of it. Both URL (`postgres://...?sslmode=...`)
/// and key=value (`host=... sslmode=...`) forms are understood.
pub(crate) fn split_url(url: &str) -> std::result::Result<(String, TlsParams), String> {
    let mut params = TlsParams::default();
    let mut seen: Vec<String> = Vec::new();
    let mut take = |key: &str, value: String| -> std::result::Result<bool, String> {
        if matches!(key, "sslmode" | "sslrootcert" | "sslcert" | "sslkey") {
            // libpq takes the last one; a url saying both `require` and `disable` is a
            // mistake better refused than guessed at.
            if seen.iter().any(|k| k == key) {
                return Err(format!("{key} is given more than once"));
            }
            seen.push(key.to_owned());
        }
        match key {
            "sslmode" => {
                params.mode = SslMode::parse(&value).ok_or_else(|| {
                    format!(
                        "sslmode \"{value}\" is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    )
                })?;
            }
            "sslrootcert" => params.root_cert = Some(value),
            "sslcert" => params.cert = Some(value),
            "sslkey" => params.key = Some(value),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let (query, fragment) = match query.split_once('#') {
                    Some((q, f)) => (q, Some(f)),
                    None => (query, None),
                };
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, percent_decode(value))? {
                        kept.push(pair);
                    }
                }
                let mut rest = base.to_owned();
                if !kept.is_empty() {
                    rest.push('?');
                    rest.push_str(&kept.join("&"));
                }
                if let Some(f) = fragment {
                    rest.push('#');
                    rest.push_str(f);
                }
                rest
            }
        }
    } else {
        // key=value form: drop the TLS pairs (unquoted values only, as written in practice).
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            match word.split_once('=') {
                Some((key, value)) if !value.starts_with('\'') => {
                    if !take(key, value.to_owned())? {
                        kept.push(word);
                    }
                }
                _ => kept.push(word),
            }
        }
        kept.join(" ")
    };
    if params.cert.is_some() != params.key.is_some() {
        return Err("sslcert and sslkey must be given together".to_owned());
    }
    Ok((rest, params))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TlsParams {
    /// The rustls configuration for these parameters; `None` for `disable`. Errors name the
    /// file or parameter at fault.
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::permanent(format!("setting up TLS: {e}")))?;
        let check = match self.mode {
            SslMode::VerifyFull => Some(true),
            SslMode::VerifyCa => Some(false),
            SslMode::Require if self.root_cert.is_some() => Some(false),
            _ => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            None => Arc::new(AnyCertificate(provider.clone())),
            Some(check_name) => {
                let roots = self.roots()?;
                let inner =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| {
                            Error::permanent(format!("setting up TLS verification: {e}"))
                        })?;
                Arc::new(Verify { inner, check_name })
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let certs = read_certs(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    Error::permanent(format!(
                        "cannot read the client key sslkey=\"{key}\": {e} (hint: a PEM file with one private key)"
                    ))
                })?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    Error::permanent(format!(
                        "the client certificate sslcert=\"{cert}\" does not fit its key: {e}"
                    ))
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Some(Arc::new(config)))
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match self.root_cert.as_deref() {
            Some("system") => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(Error::permanent(
                        "sslrootcert=system: no root certificates found on this system (hint: install ca-certificates, or name a PEM file)",
                    ));
                }
            }
            Some(path) => {
                for cert in read_certs(path, "sslrootcert")? {
                    roots.add(cert).map_err(|e| {
                        Error::permanent(format!(
                            "sslrootcert=\"{path}\" holds a certificate that cannot be a root: {e}"
                        ))
                    })?;
                }
            }
            None => {
                let default = std::env::var_os("HOME")
                    .map(|home| PathBuf::from(home).join(".postgresql/root.crt"));
                match default.filter(|p| p.exists()) {
                    Some(path) => {
                        for cert in read_certs(&path.to_string_lossy(), "sslrootcert")? {
                            let _ = roots.add(cert);
                        }
                    }
                    None => {
                        return Err(Error::permanent(format!(
                            "sslmode={} needs root certificates to check the server's against (hint: add sslrootcert=/path/to/ca.crt or sslrootcert=system to the url)",
                            if self.mode == SslMode::VerifyFull {
                                "verify-full"
                            } else {
                                "verify-ca"
                            }
                        )));
                    }
                }
            }
        }
        Ok(roots)
    }
}

fn read_certs(path: &str, param: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::permanent(format!("cannot read {param}=\"{path}\": {e}")))?
        .collect();
    let certs =
        certs.map_err(|e| Error::permanent(format!("cannot read {param}=\"{path}\": {e}")))?;
    if certs.is_empty() {
        return Err(Error::permanent(format!(
            "{param}=\"{path}\" holds no PEM certificate"
        )));
    }
    Ok(certs)
}

/// `require` without roots: any certificate (the connection is encrypted, the server not
/// authenticated), with the handshake's signatures still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` and `verify-full`: the chain is checked against the roots; the host name
/// only for `verify-full`.
#[derive(Debug)]
struct Verify {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether `e` (or what caused it) is a TLS failure that will happen again: a certificate
/// that does not verify, a handshake the server refused.
pub(crate) fn is_permanent_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        find_tls_error(e),
        Some(
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::AlertReceived(_)
                | rustls::Error::PeerIncompatible(_)
                | rustls::Error::NoCertificatesPresented
        )
    )
}

/// The rustls error in `e`'s chain (also inside `io::Error`s), if there is one.
fn find_tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref())
            && let Some(tls) = find_tls_error(inner)
        {
            return Some(tls);
        }
        next = e.source();
    }
    None
}

/// `e` and its causes in one line, with a hint for certificate failures.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    let mut text = parts.join(": ");
    let hint = match find_tls_error(e) {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                Some("the server's certificate is not signed by a root in sslrootcert")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Some(
                    "the server's certificate is not issued for the host in the url; connect by a name it names, or use sslmode=verify-ca",
                )
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                Some("the server's certificate is outside its validity period")
            }
            _ => None,
        },
        _ => None,
    };
    if let Some(hint) = hint {
        text.push_str(&format!(" (hint: {hint})"));
    }
    text
}

/// [`MakeTlsConnect`] for `tokio-postgres`.
#[derive(Clone)]
pub(crate) struct MakeTls(pub Option<Arc<ClientConfig>>);

impl TlsParams {
    /// The `sslmode` to give `tokio-postgres`.
    pub fn tokio_postgres_mode(&self) -> tokio_postgres::config::SslMode {
        self.mode.for_tokio_postgres()
    }
}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        // tokio-postgres passes "" for a Unix socket, where it never starts a handshake:
        // that is not a bad name.
        let name = if domain.is_empty() {
            None
        } else {
            Some(server_name(domain)?)
        };
        Ok(Connect {
            config: self.0.clone(),
            name,
        })
    }
}

/// One TLS handshake for `tokio-postgres`.
pub(crate) struct Connect {
    config: Option<Arc<ClientConfig>>,
    /// `None` over a Unix socket.
    name: Option<ServerName<'static>>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let Some(config) = self.config else {
                return Err(io::Error::other("TLS is disabled (sslmode=disable)"));
            };
            let Some(name) = self.name else {
                return Err(io::Error::other(
                    "no host name to check a certificate against",
                ));
            };
            wrap(config, name, stream).await
        })
    }
}

/// An encrypted stream.
pub(crate) struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

/// Wrap `stream` in TLS with `config`, checking the certificate against `host`.
pub(crate) async fn handshake<S>(
    config: Arc<ClientConfig>,
    host: &str,
    stream: S,
) -> io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    wrap(config, server_name(host)?, stream).await
}

/// The name a certificate is checked against (and sent as SNI).
fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// The handshake both kinds of connection share.
async fn wrap<S>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    stream: S,
) -> io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await?;
    Ok(TlsStream(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_are_split_off() {
        let (rest, p) = split_url(
            "postgres://u:p@h:5432/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.crt",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5432/db?application_name=x");
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.root_cert.as_deref(), Some("/tmp/ca.crt"));

        let (rest, p) = split_url("postgres://u@h/db?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(p.mode, SslMode::Require);

        let (rest, p) = split_url("postgres://u@h/db").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(p, TlsParams::default());

        let (rest, p) =
            split_url("host=h user=u sslmode=disable dbname=d sslcert=/c sslkey=/k").unwrap();
        assert_eq!(rest, "host=h user=u dbname=d");
        assert_eq!(p.mode, SslMode::Disable);
        assert_eq!(p.cert.as_deref(), Some("/c"));

        assert!(
            split_url("postgres://h/db?sslmode=maybe")
                .unwrap_err()
                .contains("\"maybe\"")
        );
        assert!(split_url("postgres://h/db?sslcert=/c").is_err());
        assert_eq!(
            split_url("postgres://h/db?sslmode=allow").unwrap().1.mode,
            SslMode::Prefer
        );
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn verifying_modes_without_roots_say_how_to_give_them() {
        let p = TlsParams {
            mode: SslMode::VerifyFull,
            root_cert: Some("/nonexistent/ca.crt".into()),
            ..TlsParams::default()
        };
        let e = p.client_config().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.crt"), "{e}");
        let p = TlsParams {
            mode: SslMode::Disable,
            ..TlsParams::default()
        };
        assert!(p.client_config().unwrap().is_none());
        let p = TlsParams {
            mode: SslMode::Require,
            ..TlsParams::default()
        };
        assert!(p.client_config().unwrap().is_some());
    }
}
