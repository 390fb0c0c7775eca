//! The standby verbs as an operator runs them (gpinitstandby, gpactivatestandby):
//! `init-standby -s HOST` adds a standby while the coordinator serves, `init-standby -n`
//! restarts and resynchronizes a stale one, `init-standby -r` removes it from the catalog (so
//! that a damaged one can be replaced), `activate-standby` promotes it. Starting and stopping
//! the standby process on its host is the caller's (the production binary spawns a process,
//! the simulator starts it on the standby's simulated host).

use std::future::Future;
use std::time::Duration;

use super::{Activation, MirroringStatus, StandbyReply, StandbyRequest, SummaryState};
use crate::client::Client;
use crate::io::net::Connection;
use crate::io::runtime::{self, Instant};
use crate::model::catalog::{Mode, Role, SegmentConfig, Status};
use crate::wire::{ClientRequest, ClientResponse, DbError};

/// Asks a standby for its own view; the client library's, as the coordinator asks it too.
pub use crate::client::passive_status;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StandbyAdminError {
    #[error("options -s and -n cannot be used together: -s adds a standby, -n resynchronizes the configured one")]
    BothModes,
    #[error("one of -s HOST (add a standby coordinator), -n (resynchronize the configured one) or -r (remove the configured one) is required")]
    NoMode,
    #[error("cannot use -n when the standby coordinator has not yet been configured")]
    NothingToResync,
    #[error("cannot use -r when the standby coordinator has not yet been configured: there is no standby to remove")]
    NothingToRemove,
    #[error("a standby coordinator is already configured (dbid {dbid} on host {host}); only one standby is allowed")]
    AlreadyConfigured { dbid: u16, host: String },
    #[error("the coordinator refused: {0}")]
    Coordinator(String),
    #[error("could not start the standby on host {host}: {why}")]
    Launch { host: String, why: String },
    #[error("the standby did not become Synchronized within {within:?}: {state}")]
    NotSynchronized { within: Duration, state: String },
    #[error("the standby on host {host} is not running: it stopped answering, or never started, before it was Synchronized (its host failed, or its base backup did); run init-standby again")]
    StandbyGone { host: String },
    #[error("activate-standby: {0}")]
    Activate(String),
    #[error("activate-standby: {message}")]
    ActivateRefused {
        why: super::ActivateRefusal,
        message: String,
    },
}

/// Where the new standby lives (`-s HOST` and its port and data directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStandby {
    pub hostname: String,
    pub address: String,
    pub port: u16,
    pub datadir: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitMode {
    Add(NewStandby),
    Resync,
}

/// The arguments' rules, as gpinitstandby's: exactly one of `-s` and `-n`.
pub fn init_mode(add: Option<NewStandby>, resync: bool) -> Result<InitMode, StandbyAdminError> {
    match (add, resync) {
        (Some(_), true) => Err(StandbyAdminError::BothModes),
        (Some(new), false) => Ok(InitMode::Add(new)),
        (None, true) => Ok(InitMode::Resync),
        (None, false) => Err(StandbyAdminError::NoMode),
    }
}

/// The rules against the cluster's state: `-n` needs a configured standby; `-s` needs none.
/// Returns the configured standby's row for `-n`.
pub fn check_mode(
    mode: &InitMode,
    status: &MirroringStatus,
) -> Result<Option<SegmentConfig>, StandbyAdminError> {
    match (mode, &status.standby) {
        (InitMode::Resync, None) => Err(StandbyAdminError::NothingToResync),
        (InitMode::Resync, Some(row)) => Ok(Some(row.clone())),
        (InitMode::Add(_), Some(row)) => Err(StandbyAdminError::AlreadyConfigured {
            dbid: row.dbid,
            host: row.hostname.clone(),
        }),
        (InitMode::Add(_), None) => Ok(None),
    }
}

fn coordinator_error(e: DbError) -> StandbyAdminError {
    StandbyAdminError::Coordinator(e.to_string())
}

/// The mirroring view of the coordinator.
pub async fn mirroring_status(client: &mut Client) -> Result<MirroringStatus, StandbyAdminError> {
    match client
        .standby(StandbyRequest::Status)
        .await
        .map_err(coordinator_error)?
    {
        StandbyReply::Status(s) => Ok(s),
        other => Err(StandbyAdminError::Coordinator(format!(
            "unexpected answer: {other:?}"
        ))),
    }
}

/// `init-standby`: checks the arguments against the cluster, records a new standby (`-s`),
/// starts the standby process with `launch` unless it already runs, and waits until the
/// coordinator reports it Synchronized. `coordinator` is the coordinator's own row (its
/// hostname, address, port and data directory), recorded if the catalog lacks it.
pub async fn init_standby<L, F>(
    client: &mut Client,
    coordinator: SegmentConfig,
    mode: InitMode,
    launch: L,
    within: Duration,
) -> Result<MirroringStatus, StandbyAdminError>
where
    L: FnOnce(SegmentConfig) -> F,
    F: Future<Output = Result<(), String>>,
{
    let status = mirroring_status(client).await?;
    let standby = match check_mode(&mode, &status)? {
        Some(row) => row,
        None => {
            let InitMode::Add(new) = mode else {
                unreachable!("check_mode returns a row for -n")
            };
            let row = SegmentConfig {
                dbid: 0,
                content: -1,
                role: Role::Mirror,
                preferred_role: Role::Mirror,
                mode: Mode::Synced,
                status: Status::Up,
                hostname: new.hostname,
                address: new.address,
                port: new.port,
                datadir: new.datadir,
            };
            match client
                .standby(StandbyRequest::Register {
                    coordinator,
                    standby: row,
                })
                .await
                .map_err(coordinator_error)?
            {
                StandbyReply::Registered { standby, .. } => standby,
                other => {
                    return Err(StandbyAdminError::Coordinator(format!(
                        "unexpected answer: {other:?}"
                    )))
                }
            }
        }
    };
    let (addr, host) = (standby.endpoint(), standby.hostname.clone());
    if passive_status(&addr, Duration::from_secs(1))
        .await
        .is_none()
    {
        launch(standby)
            .await
            .map_err(|why| StandbyAdminError::Launch {
                host: host.clone(),
                why,
            })?;
    }
    wait_until_synchronized(client, Some((&addr, &host)), within).await
}

/// `init-standby -r` (gpinitstandby -r): removes the configured standby from the catalog and
/// returns its row as it was. The caller stops the standby's process, if it runs; its data
/// directory stays where it is. A standby is added again with `init-standby -s`.
pub async fn remove_standby(client: &mut Client) -> Result<SegmentConfig, StandbyAdminError> {
    let status = mirroring_status(client).await?;
    let Some(row) = status.standby else {
        return Err(StandbyAdminError::NothingToRemove);
    };
    match client
        .standby(StandbyRequest::Unregister { dbid: row.dbid })
        .await
        .map_err(coordinator_error)?
    {
        StandbyReply::Unregistered { standby, .. } => Ok(standby),
        other => Err(StandbyAdminError::Coordinator(format!(
            "unexpected answer: {other:?}"
        ))),
    }
}

/// How long a standby that answered may then stay silent before `init-standby` stops waiting
/// for it: its process is gone, as when gpinitstandby's pg_basebackup fails with its host, and
/// the tool reports that at once rather than waiting out its time for a standby no one runs.
pub const STANDBY_SILENT_MAX: Duration = Duration::from_secs(3);

/// How long a standby that never answered yet may take to start listening.
pub const STANDBY_START_MAX: Duration = Duration::from_secs(10);

/// Whether the standby being waited for is gone: it answered once, then stayed silent for
/// [`STANDBY_SILENT_MAX`]; or it never answered in [`STANDBY_START_MAX`] (its host failed as
/// it started).
#[derive(Default)]
struct Liveness {
    answered: bool,
    silent_since: Option<Duration>,
}

impl Liveness {
    /// One look at `now` (time since the wait began): whether the standby answered.
    fn gone(&mut self, answers: bool, now: Duration) -> bool {
        if answers {
            self.answered = true;
            self.silent_since = None;
            return false;
        }
        let since = *self.silent_since.get_or_insert(now);
        let silent = now.saturating_sub(since);
        if self.answered {
            silent >= STANDBY_SILENT_MAX
        } else {
            silent >= STANDBY_START_MAX
        }
    }
}

/// Polls the mirroring view until it says Synchronized, for up to `within`.
pub async fn wait_synchronized(
    client: &mut Client,
    within: Duration,
) -> Result<MirroringStatus, StandbyAdminError> {
    wait_until_synchronized(client, None, within).await
}

/// Polls the mirroring view until it says Synchronized, for up to `within`; with `standby`
/// (its address and host), gives up early once that standby is gone ([`Liveness`]).
async fn wait_until_synchronized(
    client: &mut Client,
    standby: Option<(&str, &str)>,
    within: Duration,
) -> Result<MirroringStatus, StandbyAdminError> {
    let start = Instant::now();
    let deadline = start + within;
    let mut liveness = Liveness::default();
    loop {
        let last = mirroring_status(client).await;
        if let Ok(s) = &last {
            if s.summary_state == SummaryState::Synchronized {
                return Ok(s.clone());
            }
        }
        if let Some((addr, host)) = standby {
            let answers = passive_status(addr, Duration::from_secs(1)).await.is_some();
            if liveness.gone(answers, start.elapsed()) {
                return Err(StandbyAdminError::StandbyGone { host: host.into() });
            }
        }
        if Instant::now() >= deadline {
            let state = match last {
                Ok(s) => format!(
                    "{}{}",
                    s.summary_state.label(),
                    s.error_message
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
                Err(e) => e.to_string(),
            };
            return Err(StandbyAdminError::NotSynchronized { within, state });
        }
        runtime::sleep(Duration::from_millis(200)).await;
    }
}

/// `activate-standby`, sent to the standby at `addr`.
pub async fn activate_standby(
    addr: &str,
    within: Duration,
) -> Result<Activation, StandbyAdminError> {
    let failed = |e: String| StandbyAdminError::Activate(e);
    let mut conn = Connection::connect(addr, within)
        .await
        .map_err(|e| failed(format!("cannot reach the standby: {e}")))?;
    match conn
        .call::<_, ClientResponse>(&ClientRequest::Standby(StandbyRequest::Activate), within)
        .await
        .map_err(|e| failed(e.to_string()))?
    {
        ClientResponse::Standby(StandbyReply::Activated(a)) => Ok(a),
        ClientResponse::Standby(StandbyReply::Refused { why, message }) => {
            Err(StandbyAdminError::ActivateRefused { why, message })
        }
        ClientResponse::Error(e) => Err(failed(e.to_string())),
        other => Err(failed(format!("unexpected answer: {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new() -> NewStandby {
        NewStandby {
            hostname: "smdw".into(),
            address: "10.0.3.1".into(),
            port: 5432,
            datadir: "/data/standby".into(),
        }
    }

    fn status(standby: Option<SegmentConfig>) -> MirroringStatus {
        MirroringStatus {
            summary_state: if standby.is_some() {
                SummaryState::NotSynchronized
            } else {
                SummaryState::NotConfigured
            },
            detail_state: String::new(),
            log_time_ms: None,
            error_message: None,
            standby,
            coordinator_flushed_lsn: 0,
            standby_flushed_lsn: 0,
        }
    }

    fn row() -> SegmentConfig {
        crate::model::catalog::tests::standby_row()
    }

    #[test]
    fn exactly_one_of_s_and_n() {
        assert_eq!(
            init_mode(Some(new()), true),
            Err(StandbyAdminError::BothModes)
        );
        assert_eq!(init_mode(None, false), Err(StandbyAdminError::NoMode));
        assert_eq!(init_mode(None, true), Ok(InitMode::Resync));
        assert_eq!(init_mode(Some(new()), false), Ok(InitMode::Add(new())));
    }

    #[test]
    fn n_needs_a_standby_and_s_needs_none() {
        let err = check_mode(&InitMode::Resync, &status(None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot use -n when the standby coordinator has not yet been configured"
        );
        assert_eq!(
            check_mode(&InitMode::Resync, &status(Some(row()))),
            Ok(Some(row()))
        );
        let err = check_mode(&InitMode::Add(new()), &status(Some(row()))).unwrap_err();
        assert!(
            err.to_string().contains("only one standby is allowed"),
            "{err}"
        );
        assert_eq!(check_mode(&InitMode::Add(new()), &status(None)), Ok(None));
    }

    #[test]
    fn a_standby_that_answered_then_stays_silent_is_gone_and_one_still_starting_is_not() {
        let s = |n: u64| Duration::from_secs(n);
        let mut starting = Liveness::default();
        assert!(!starting.gone(false, s(0)));
        assert!(
            !starting.gone(false, s(9)),
            "never answered: may be starting"
        );
        assert!(starting.gone(false, s(10)), "never started");
        let mut died = Liveness::default();
        assert!(!died.gone(true, s(1)));
        assert!(!died.gone(false, s(2)));
        assert!(!died.gone(false, s(4)), "silent for 2 s only");
        assert!(died.gone(false, s(5)));
        let mut blip = Liveness::default();
        assert!(!blip.gone(true, s(0)));
        assert!(!blip.gone(false, s(1)));
        assert!(!blip.gone(true, s(3)), "it answered again");
        assert!(!blip.gone(false, s(5)));
        assert!(!blip.gone(false, s(7)));
    }
}
