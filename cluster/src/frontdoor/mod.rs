//! The SQL front door: the coordinator speaks PostgreSQL's wire protocol, so
//! psql, pgbench and drivers connect to it unchanged. Each client connection gets its own
//! [`crate::coordinator::SqlConnection`]; messages are framed and coded by `pgwire` (its codec,
//! message types and SCRAM exchange), over a stream whose message sizes are watched
//! ([`guard`]). Who may connect is the users file's and the host rules' ([`auth`]).
//!
//! A fresh coordinator opens the front door as soon as its services run; an activated standby
//! once it has taken over (both through [`crate::coordinator::CoordinatorConfig::on_services`]).
//!
//! The same code serves in both worlds: over real TCP (and TLS) in production, over the
//! simulated network in the simulator, where a real driver connects to it under every fault
//! the nemesis injects. Time, randomness and spawning go through the seam ([`crate::io::runtime`]).

pub mod auth;
mod conn;
pub mod guard;
mod values;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::coordinator::{Services, ServicesHook};
use crate::io::runtime;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;

/// The longest message a client may send (a statement's text is at most 1 MiB; parameters
/// and their headers fit well within this).
pub const MAX_MESSAGE: usize = 4 << 20;

/// How long a client has, from connecting, to authenticate.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The front door's settings.
#[derive(Clone)]
pub struct FrontDoorConfig {
    /// Where it listens (`address:sql_port`).
    pub listen_addr: String,
    /// The users file (`name verifier` lines).
    pub users_file: PathBuf,
    /// The host rules (`hba.conf`).
    pub hba_file: PathBuf,
    /// Users and rules given in memory instead of read from the files (the simulator's).
    pub given: Option<Arc<(auth::Users, auth::Hba)>>,
    /// Clients connected at once; more are refused (`53300`).
    pub max_connections: usize,
    /// TLS, when the cluster file names a certificate and key.
    pub tls: Option<Tls>,
}

/// What accepts TLS connections: rustls in production; nothing in the simulator.
#[cfg(feature = "real-io")]
pub type Tls = tokio_rustls::TlsAcceptor;
/// What accepts TLS connections: nothing in the simulator.
#[cfg(not(feature = "real-io"))]
#[derive(Clone)]
pub enum Tls {}

/// A listener bound before the process starts serving (so a taken port fails its start):
/// production only.
#[cfg(feature = "real-io")]
pub type Prebound = std::net::TcpListener;
/// A listener bound before the process starts serving: none in the simulator.
#[cfg(not(feature = "real-io"))]
pub enum Prebound {}

#[cfg(feature = "real-io")]
fn adopt(l: Prebound) -> std::io::Result<TcpListener> {
    TcpListener::from_std(l)
}

#[cfg(not(feature = "real-io"))]
fn adopt(l: Prebound) -> std::io::Result<TcpListener> {
    match l {}
}

impl FrontDoorConfig {
    /// Reads both files once, as a start-up check: a bad line is an error naming the file,
    /// the line and the rule. (Each connection reads them again, so `sql-user` needs no
    /// restart.)
    pub fn check(&self) -> Result<(), String> {
        if self.given.is_some() {
            return Ok(());
        }
        auth::Users::load(&self.users_file)?;
        auth::Hba::load(&self.hba_file)?;
        Ok(())
    }
}

/// A TLS acceptor for `cert` and `key` (PEM files), on ring.
#[cfg(feature = "real-io")]
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("sql_tls_cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("sql_tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("sql_tls_cert {}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("sql_tls_key {}: {e}", key.display()))?;
    // ring, as everywhere in this build (aws-lc needs a C toolchain); rustls marks its ring
    // provider deprecated for want of post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("sql_tls_cert/sql_tls_key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A hook that opens the front door on `listener` (bound already, so a taken port fails the
/// process's start) or, without one, binds `cfg.listen_addr` when called (an activated
/// standby).
pub fn hook(cfg: FrontDoorConfig, listener: Option<Prebound>) -> ServicesHook {
    let listener = std::sync::Mutex::new(listener);
    ServicesHook(Arc::new(move |services: &Services| {
        let bound = listener.lock().unwrap().take();
        let cfg = cfg.clone();
        let services = services.clone();
        runtime::spawn(async move {
            let listener = match bound {
                Some(l) => adopt(l),
                None => TcpListener::bind(&cfg.listen_addr).await,
            };
            match listener {
                Ok(listener) => serve(cfg, listener, services).await,
                Err(e) => {
                    warn!(addr = %cfg.listen_addr, error = %e, "the SQL front door cannot listen")
                }
            }
        });
    }))
}

/// Binds the front door's address (non-blocking, for [`hook`]).
#[cfg(feature = "real-io")]
pub fn bind(addr: &str) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Accepts clients until the process ends.
async fn serve(cfg: FrontDoorConfig, listener: TcpListener, services: Services) {
    info!(addr = %cfg.listen_addr, tls = cfg.tls.is_some(), "SQL front door listening");
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let cancels = Arc::new(conn::CancelKeys::default());
    let cfg = Arc::new(cfg);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "SQL front door: accept failed");
                runtime::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let slot = slots.clone().try_acquire_owned().ok();
        let (cfg, services, cancels) = (cfg.clone(), services.clone(), cancels.clone());
        runtime::spawn(async move {
            // A message that breaks pgwire's decoder (a malformed Bind made it panic, found by
            // `sim/tests/front_door_fuzz.rs`) ends its own connection, and only it: its
            // session is dropped, which closes its segment connections, and those roll back
            // what it had open.
            let served = AssertUnwindSafe(conn::serve(
                stream,
                peer,
                cfg,
                services,
                cancels.clone(),
                slot,
            ))
            .catch_unwind()
            .await;
            if served.is_err() {
                warn!(%peer, "SQL front door: a malformed message broke the connection's decoding; the connection is closed");
            }
        });
    }
}
