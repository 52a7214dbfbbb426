//! How Tabula connects to a PostgreSQL server: the URL's `sslmode` and `sslrootcert` read
//! as libpq reads them, TLS through the platform's library (`native-tls`: OpenSSL on Linux,
//! Security.framework on macOS, SChannel on Windows).
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always | not checked |
//! | `verify-ca` | always | signed by a trusted CA (`sslrootcert`, else the system's) |
//! | `verify-full` | always | that, and issued to the host connected to |
//!
//! As with libpq, `prefer` and `require` encrypt but do not authenticate the server: use
//! `verify-full` where the network between client and server is not trusted.

use std::sync::Mutex;

use native_tls::{Certificate, TlsConnector};
use postgres_native_tls::MakeTlsConnector;

use crate::error::{err, Result};

/// A URL's connection settings: the configuration the `postgres` crate reads (with
/// `sslmode` as it knows it) and the TLS connector the URL asks for.
pub(crate) fn config(url: &str) -> Result<(postgres::Config, MakeTlsConnector)> {
    let shown = super::redacted_url(url);
    let bad = |why: String| err!(InvalidArgument, "'{shown}': {why}");
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut verify_ca, mut verify_host, mut root) = (false, false, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (key, value) {
            ("sslmode", "verify-ca") => {
                verify_ca = true;
                kept.push("sslmode=require".to_string());
            }
            ("sslmode", "verify-full") => {
                (verify_ca, verify_host) = (true, true);
                kept.push("sslmode=require".to_string());
            }
            ("sslmode", "allow") => kept.push("sslmode=prefer".to_string()),
            ("sslrootcert", path) => root = Some(decode(path)),
            _ => kept.push(pair.to_string()),
        }
    }
    let rest = if kept.is_empty() { String::new() } else { format!("?{}", kept.join("&")) };
    let config: postgres::Config = format!("{base}{rest}")
        .parse()
        .map_err(|e| bad(format!("not a PostgreSQL connection URL ({e}); write postgres://user@host:port/db")))?;
    // A connector loads the system's root certificates (35 ms here): one is made for each
    // kind of checking and root file, then shared.
    static CONNECTORS: Mutex<Vec<(Checks, MakeTlsConnector)>> = Mutex::new(Vec::new());
    let checks = (verify_ca, verify_host, root);
    let mut made = CONNECTORS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, tls)) = made.iter().find(|(c, _)| *c == checks) {
        return Ok((config, tls.clone()));
    }
    let mut tls = TlsConnector::builder();
    tls.danger_accept_invalid_certs(!verify_ca).danger_accept_invalid_hostnames(!verify_host);
    if let Some(path) = &checks.2 {
        let pem = std::fs::read(path).map_err(|e| bad(format!("sslrootcert '{path}' cannot be read ({e})")))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| bad(format!("sslrootcert '{path}' is not a PEM certificate ({e})")))?;
        tls.add_root_certificate(cert);
    }
    let tls = MakeTlsConnector::new(tls.build().map_err(|e| bad(format!("TLS cannot be set up ({e})")))?);
    made.push((checks, tls.clone()));
    Ok((config, tls))
}

/// What a connector checks of a server's certificate: signed by a trusted CA, issued to the
/// host, and the root certificate file trusted besides the system's.
type Checks = (bool, bool, Option<String>);

/// `%XX` escapes of a URL parameter's value decoded (a path may hold `%2F`).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A client connected to the server `url` names, as Tabula connects (TLS as its `sslmode`
/// says; see the module docs), for what an application or test does beside Tabula on the
/// same server: making schemas, reading what Tabula wrote.
pub fn connect(url: &str) -> Result<postgres::Client> {
    let (config, tls) = config(url)?;
    config.connect(tls).map_err(|e| super::pg::pg_error(&super::redacted_url(url), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_ssl_modes_become_what_the_client_knows() {
        let (full, _) = config("postgres://ann@db/x?sslmode=verify-full&application_name=t").unwrap();
        assert_eq!(full.get_ssl_mode(), postgres::config::SslMode::Require);
        assert_eq!(full.get_application_name(), Some("t"));
        let (default, _) = config("postgres://ann@db/x").unwrap();
        assert_eq!(default.get_ssl_mode(), postgres::config::SslMode::Prefer);
        let e = config("postgres://ann:pw@db/x?sslmode=verify-full&sslrootcert=%2Fno%2Fsuch.pem").err().unwrap();
        assert!(e.to_string().contains("sslrootcert '/no/such.pem' cannot be read"), "{e}");
        assert!(!e.to_string().contains("pw"), "{e}");
        let e = config("postgres://ann@db/x?sslmode=sometimes").err().unwrap();
        assert_eq!(e.code(), crate::ErrorCode::InvalidArgument, "{e}");
    }
}
