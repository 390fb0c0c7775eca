//! The verbs as an administrator runs them: options checked, files parsed and checked against
//! the catalog, new instances started on their hosts ([`Hosts`]), then the coordinator asked to
//! carry out and record the change. Shared by the simulator and the production binary.

use crate::client::Client;
use crate::model::catalog::{Catalog, Role, SegmentConfig};
use crate::model::layout::Layout;
pub use crate::wire::agent::HostError;
use crate::wire::DbError;

use super::config::{self, Location};
use super::state::{self, View};
use super::{AdminReply, AdminRequest, Recovered, Relocation, StateReport};

/// What the verbs need from the machines: where an address lives, and starting or stopping an
/// instance process (the seed utilities do this over ssh).
pub trait Hosts {
    /// The host name of an address, if it is a known host.
    fn hostname_of(&self, address: &str) -> Option<String>;
    /// Starts a fresh, empty instance for `row` (role mirror) that streams from `primary`
    /// (`ip:port`), copying everything.
    fn start_mirror(
        &self,
        row: &SegmentConfig,
        primary: &str,
    ) -> impl std::future::Future<Output = Result<(), HostError>> + Send;
    /// Stops the instance process of `row`, if it runs.
    fn stop_instance(&self, row: &SegmentConfig) -> impl std::future::Future<Output = ()> + Send;
    /// The address a new instance on `hostname` takes: the host's address where instances
    /// share it; the `nth` (0-based) free one where each instance has an address of its own.
    fn new_address(&self, hostname: &str, nth: usize) -> Option<String>;
}

/// `recoverseg`'s options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoverOptions {
    /// `-F`: full copy.
    pub full: bool,
    /// `-r`: rebalance.
    pub rebalance: bool,
    /// `-i`: the text of the recovery file.
    pub input: Option<String>,
    /// `-o`: write a sample recovery file (returned as text).
    pub output: bool,
}

impl RecoverOptions {
    /// The real tool's exclusions.
    pub fn check(&self) -> Result<(), VerbError> {
        if self.input.is_some() && self.rebalance {
            return Err(VerbError::Options("Only one of -i and -r may be specified"));
        }
        if self.output && (self.input.is_some() || self.rebalance) {
            return Err(VerbError::Options("-o cannot be combined with -i or -r"));
        }
        if self.rebalance && self.full {
            return Err(VerbError::Options("-F cannot be combined with -r"));
        }
        Ok(())
    }
}

/// Why a verb did not do what was asked, in the words the operator reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerbError {
    /// Options that exclude each other (the real tool's rules).
    #[error("{0}")]
    Options(&'static str),
    /// A line of an input file (or of the plan written as one) breaks a rule.
    #[error(transparent)]
    Input(#[from] config::LineError),
    /// The coordinator refused, or could not be reached.
    #[error(transparent)]
    Coordinator(#[from] DbError),
    /// The coordinator answered with something the verb did not ask for.
    #[error("unexpected answer {0}")]
    Unexpected(String),
    /// A host could not start an instance.
    #[error(transparent)]
    Host(#[from] HostError),
    /// What was asked cannot be done on this cluster.
    #[error("{0}")]
    Refused(String),
}

impl VerbError {
    fn unexpected(reply: AdminReply) -> Self {
        VerbError::Unexpected(format!("{reply:?}"))
    }
}

async fn admin(client: &mut Client, req: AdminRequest) -> Result<AdminReply, VerbError> {
    Ok(client.admin(req).await?)
}

/// One line per recovered instance.
pub fn describe_recovered(results: &[Recovered]) -> String {
    if results.is_empty() {
        return "No segments to recover\n".into();
    }
    let mut out = String::new();
    for r in results {
        match &r.outcome {
            Ok(rep) => out.push_str(&format!(
                "dbid {} content {}: {} recovery from dbid {}: rewound to lsn {} \
                 (discarded {} bytes), resynchronizing\n",
                r.dbid,
                r.content,
                if r.full { "full" } else { "incremental" },
                r.source_dbid,
                rep.divergence_lsn,
                rep.discarded_bytes
            )),
            Err(e) => out.push_str(&format!(
                "dbid {} content {}: recovery failed: {e}\n",
                r.dbid, r.content
            )),
        }
    }
    out
}

/// The outcome of `recoverseg`.
#[derive(Clone, Debug)]
pub enum RecoverOutcome {
    Recovered(Vec<Recovered>),
    Rebalanced(Vec<crate::model::catalog::Content>),
    Relocated(Catalog),
    /// `-o`: the sample file's text.
    Sample(String),
}

/// `recoverseg [-F] [-r] [-i FILE] [-o FILE]`.
pub async fn recoverseg<H: Hosts>(
    client: &mut Client,
    hosts: &H,
    opts: &RecoverOptions,
) -> Result<RecoverOutcome, VerbError> {
    opts.check()?;
    if opts.output {
        let cat = client.catalog().await?;
        return Ok(RecoverOutcome::Sample(config::sample_recover(&cat)));
    }
    if opts.rebalance {
        return match admin(client, AdminRequest::Rebalance).await? {
            AdminReply::Rebalanced(c) => Ok(RecoverOutcome::Rebalanced(c)),
            other => Err(VerbError::unexpected(other)),
        };
    }
    let Some(text) = &opts.input else {
        if opts.full {
            start_stopped_for_full_copy(client, hosts).await?;
        }
        return match admin(
            client,
            AdminRequest::Recover {
                full: opts.full,
                only: None,
            },
        )
        .await?
        {
            AdminReply::Recovered(r) => Ok(RecoverOutcome::Recovered(r)),
            other => Err(VerbError::unexpected(other)),
        };
    };
    recover_from_file(client, hosts, opts.full, text).await
}

/// `-i FILE`: failed instances recovered in place, and failed mirrors recovered onto the new
/// locations the file names (started there, then recorded, then stopped at the old place).
async fn recover_from_file<H: Hosts>(
    client: &mut Client,
    hosts: &H,
    full: bool,
    text: &str,
) -> Result<RecoverOutcome, VerbError> {
    let lines = config::parse_recover(text)?;
    let cat = client.catalog().await?;
    let plan = config::check_recover(&cat, &lines, |a| hosts.hostname_of(a))?;
    let in_place: Vec<u16> = plan
        .iter()
        .filter(|(_, new)| new.is_none())
        .map(|(row, _)| row.dbid)
        .collect();
    let moves = start_relocated_mirrors(&cat, hosts, &plan).await?;
    let mut recovered = Vec::new();
    if !in_place.is_empty() {
        match admin(
            client,
            AdminRequest::Recover {
                full,
                only: Some(in_place),
            },
        )
        .await?
        {
            AdminReply::Recovered(r) => recovered = r,
            other => return Err(VerbError::unexpected(other)),
        }
    }
    if moves.is_empty() {
        return Ok(RecoverOutcome::Recovered(recovered));
    }
    match admin(
        client,
        AdminRequest::Relocate {
            moves,
            why: "gprecoverseg -i".into(),
        },
    )
    .await?
    {
        AdminReply::Recorded(cat) => {
            // The failed instance must never come back at its old location when its host
            // does: it would stream from the primary beside the recorded mirror.
            for (row, new) in &plan {
                if new.is_some() {
                    hosts.stop_instance(row).await;
                }
            }
            Ok(RecoverOutcome::Relocated(cat))
        }
        other => Err(VerbError::unexpected(other)),
    }
}

/// Starts each failed mirror the plan moves at its new location, streaming from its content's
/// primary; the moves to record. A failed primary cannot move.
async fn start_relocated_mirrors<H: Hosts>(
    cat: &Catalog,
    hosts: &H,
    plan: &[config::RecoverTarget],
) -> Result<Vec<Relocation>, VerbError> {
    let mut moves = Vec::new();
    for (row, new) in plan {
        let Some((loc, host)) = new else { continue };
        if row.role == Role::Primary {
            return Err(VerbError::Refused(format!(
                "dbid {} is the acting primary of content {}; only a failed mirror can be \
                 recovered onto another host",
                row.dbid, row.content
            )));
        }
        let primary = cat
            .pair(row.content)
            .map(|p| p.primary)
            .ok_or_else(|| VerbError::Refused(format!("content {} has no primary", row.content)))?;
        let moved = relocated_row(row, loc, host);
        hosts.start_mirror(&moved, &primary.endpoint()).await?;
        moves.push(relocation(row, loc, host));
    }
    Ok(moves)
}

/// `-F` in place: a failed instance whose process no longer runs (it failed itself on a corrupt
/// block, say) gets its data directory wiped and an empty instance started there, as the real
/// tool removes the directory before it copies; the coordinator then has it copy everything.
/// An instance on a host that is still down is left for the coordinator to report.
async fn start_stopped_for_full_copy<H: Hosts>(
    client: &mut Client,
    hosts: &H,
) -> Result<(), VerbError> {
    use crate::model::catalog::Status;
    let cat = client.catalog().await?;
    for row in cat
        .segments
        .values()
        .filter(|r| r.content >= 0 && r.status == Status::Down)
    {
        let answers =
            crate::io::net::Connection::connect(&row.endpoint(), std::time::Duration::from_secs(1))
                .await
                .is_ok();
        if answers {
            continue;
        }
        if let Some(primary) = cat.pair(row.content).map(|p| p.primary) {
            if primary.dbid != row.dbid {
                if let Err(e) = hosts.start_mirror(row, &primary.endpoint()).await {
                    tracing::warn!(dbid = row.dbid, "cannot start an empty instance: {e}");
                }
            }
        }
    }
    Ok(())
}

/// The move of `row` to `loc` on `host`, as the coordinator records it.
fn relocation(row: &SegmentConfig, loc: &Location, host: &str) -> Relocation {
    Relocation {
        dbid: row.dbid,
        hostname: host.to_string(),
        address: loc.address.clone(),
        port: loc.port,
        datadir: loc.datadir.clone(),
    }
}

fn relocated_row(row: &SegmentConfig, loc: &Location, host: &str) -> SegmentConfig {
    let mut moved = row.clone();
    moved.hostname = host.to_string();
    moved.address = loc.address.clone();
    moved.port = loc.port;
    moved.datadir = loc.datadir.clone();
    moved.role = Role::Mirror;
    moved
}

/// Where `add-mirrors -p OFFSET` puts mirrors: `layout` (group by default, or spread) over the
/// hosts holding primaries (sorted by name); on its host a mirror takes the lowest primary port
/// there + its index among that host's mirrors + the offset, and `/data/mirror/gpsegN`.
pub fn plan_mirrors_by_offset(
    cat: &Catalog,
    offset: u16,
    layout: Layout,
    new_address: impl Fn(&str, usize) -> Option<String>,
) -> Result<Vec<SegmentConfig>, VerbError> {
    let primaries: Vec<SegmentConfig> = cat.pairs().into_iter().map(|p| p.primary).collect();
    let mut host_names: Vec<String> = primaries.iter().map(|p| p.hostname.clone()).collect();
    host_names.sort();
    host_names.dedup();
    let n = host_names.len();
    let per_host = host_names
        .iter()
        .map(|h| primaries.iter().filter(|p| p.hostname == *h).count())
        .max()
        .unwrap_or(1);
    layout.validate(n, per_host).map_err(|e| {
        VerbError::Refused(format!(
            "cannot place mirrors with the {layout} layout: {e}"
        ))
    })?;
    let mut per_host_index = vec![0usize; n];
    let mut mirrors_on = vec![0u16; n];
    let mut out = Vec::new();
    for p in &primaries {
        let i = host_names
            .iter()
            .position(|h| *h == p.hostname)
            .expect("listed");
        let j = per_host_index[i];
        per_host_index[i] += 1;
        let target = layout.mirror_host(n, i, j);
        let on_target: Vec<&SegmentConfig> = primaries
            .iter()
            .filter(|q| q.hostname == host_names[target])
            .collect();
        let lowest = on_target.iter().map(|q| q.port).min().unwrap_or(6000);
        let port = u32::from(lowest) + u32::from(mirrors_on[target]) + u32::from(offset);
        if port > 61000 {
            // The real tool keeps mirror ports at or below 61000.
            return Err(VerbError::Refused(format!(
                "mirror port {port} for content {} is above 61000; use a smaller -p",
                p.content
            )));
        }
        let port = u16::try_from(port)
            .map_err(|_| VerbError::Refused(format!("mirror port {port} is too large")))?;
        let nth = mirrors_on[target] as usize;
        mirrors_on[target] += 1;
        let mut row = p.clone();
        row.dbid = 0;
        row.role = Role::Mirror;
        row.preferred_role = Role::Mirror;
        row.hostname = host_names[target].clone();
        row.address = new_address(&host_names[target], nth).ok_or_else(|| {
            VerbError::Refused(format!(
                "no address for a new instance on host {}",
                host_names[target]
            ))
        })?;
        row.port = port;
        row.datadir = format!("/data/mirror/gpseg{}", p.content);
        out.push(row);
    }
    Ok(out)
}

/// How `add-mirrors` is told where mirrors go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MirrorSource {
    /// `-p OFFSET`, mirrors placed by the layout (group or spread)
    Offset(u16, Layout),
    /// `-i FILE` (its text)
    File(String),
    /// `-o FILE`: only write the plan `-p 1000` would make, as a file to edit.
    Sample,
}

/// `add-mirrors -p OFFSET | -i FILE | -o FILE`. Returns the new catalog, or (`-o`) the sample.
pub async fn add_mirrors<H: Hosts>(
    client: &mut Client,
    hosts: &H,
    source: &MirrorSource,
) -> Result<Result<Catalog, String>, VerbError> {
    let cat = client.catalog().await?;
    let rows = match source {
        MirrorSource::Sample => {
            let plan =
                plan_mirrors_by_offset(&cat, 1000, Layout::Group, |h, n| hosts.new_address(h, n))?;
            return Ok(Err(config::render_add_mirrors(&plan)));
        }
        MirrorSource::Offset(offset, layout) => {
            let plan =
                plan_mirrors_by_offset(&cat, *offset, *layout, |h, n| hosts.new_address(h, n))?;
            // The same checks a file gets.
            let text = config::render_add_mirrors(&plan);
            let lines = config::parse_add_mirrors(&text)?;
            config::check_add_mirrors(&cat, &lines, |a| hosts.hostname_of(a))?
        }
        MirrorSource::File(text) => {
            let lines = config::parse_add_mirrors(text)?;
            config::check_add_mirrors(&cat, &lines, |a| hosts.hostname_of(a))?
        }
    };
    let mut started = Vec::new();
    for row in &rows {
        let primary = cat.pair(row.content).expect("checked").primary;
        let mut with_dbid = row.clone();
        // The instance needs its dbid before the coordinator records it: the next free ones,
        // in the order the coordinator assigns them.
        with_dbid.dbid = cat.segments.keys().max().copied().unwrap_or(1) + 1 + started.len() as u16;
        hosts.start_mirror(&with_dbid, &primary.endpoint()).await?;
        started.push(with_dbid);
    }
    match admin(client, AdminRequest::AddMirrors { mirrors: rows }).await {
        Ok(AdminReply::Recorded(cat)) => Ok(Ok(cat)),
        Ok(other) => Err(VerbError::unexpected(other)),
        Err(e) => {
            for row in &started {
                hosts.stop_instance(row).await;
            }
            Err(e)
        }
    }
}

/// `move-mirrors -i FILE`: returns the new catalog and the backout file's text.
pub async fn move_mirrors<H: Hosts>(
    client: &mut Client,
    hosts: &H,
    text: &str,
) -> Result<(Catalog, String), VerbError> {
    let lines = config::parse_move_mirrors(text)?;
    let cat = client.catalog().await?;
    let plan = config::check_move_mirrors(&cat, &lines, |a| hosts.hostname_of(a))?;
    let mut moves = Vec::new();
    for (row, loc, host) in &plan {
        let primary = cat.pair(row.content).expect("checked").primary;
        hosts
            .start_mirror(&relocated_row(row, loc, host), &primary.endpoint())
            .await?;
        moves.push(relocation(row, loc, host));
    }
    let reply = admin(
        client,
        AdminRequest::Relocate {
            moves,
            why: "gpmovemirrors".into(),
        },
    )
    .await;
    match reply {
        Ok(AdminReply::Recorded(cat)) => {
            for (row, _, _) in &plan {
                hosts.stop_instance(row).await;
            }
            Ok((cat, config::render_backout(&lines)))
        }
        Ok(other) => Err(VerbError::unexpected(other)),
        Err(e) => {
            for (row, loc, host) in &plan {
                hosts.stop_instance(&relocated_row(row, loc, host)).await;
            }
            Err(e)
        }
    }
}

/// `state [-e|-m|-f|-s]`.
pub async fn state(client: &mut Client, view: View) -> Result<String, VerbError> {
    match admin(client, AdminRequest::State).await? {
        AdminReply::State(report) => Ok(state::render(&report, view)),
        other => Err(VerbError::unexpected(other)),
    }
}

/// The raw `state` report.
pub async fn state_report(client: &mut Client) -> Result<StateReport, VerbError> {
    match admin(client, AdminRequest::State).await? {
        AdminReply::State(report) => Ok(report),
        other => Err(VerbError::unexpected(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::{Mode, Status};

    fn unmirrored(hosts: usize, per_host: usize) -> Catalog {
        let mut rows = Vec::new();
        for h in 0..hosts {
            for j in 0..per_host {
                let content = (h * per_host + j) as i16;
                rows.push(SegmentConfig {
                    dbid: content as u16 + 2,
                    content,
                    role: Role::Primary,
                    preferred_role: Role::Primary,
                    mode: Mode::NotSynced,
                    status: Status::Up,
                    hostname: format!("sdw{}", h + 1),
                    address: format!("10.0.0.{}", h + 2),
                    port: 6000 + j as u16,
                    datadir: format!("/data/primary/gpseg{content}"),
                });
            }
        }
        Catalog::new(rows)
    }

    #[test]
    fn offset_plans_follow_the_layout_and_spread_needs_enough_hosts() {
        let cat = unmirrored(3, 2);
        let addr = |h: &str, _| Some(format!("{h}-addr"));
        let group = plan_mirrors_by_offset(&cat, 1000, Layout::Group, addr).unwrap();
        assert_eq!(group[0].hostname, "sdw2");
        assert_eq!(group[1].hostname, "sdw2");
        assert_eq!((group[0].port, group[1].port), (7000, 7001));
        let spread = plan_mirrors_by_offset(&cat, 1000, Layout::Spread, addr).unwrap();
        assert_eq!(spread[0].hostname, "sdw2");
        assert_eq!(spread[1].hostname, "sdw3");
        for plan in [&group, &spread] {
            for m in plan.iter() {
                let p = &cat.segments[&(m.content as u16 + 2)];
                assert_ne!(m.hostname, p.hostname);
            }
        }
        let err =
            plan_mirrors_by_offset(&unmirrored(2, 2), 1000, Layout::Spread, addr).unwrap_err();
        assert!(
            err.to_string()
                .contains("spread mirroring needs more hosts"),
            "{err}"
        );
    }

    #[test]
    fn recoverseg_options_exclude_each_other_as_the_real_tool_does() {
        let both = RecoverOptions {
            rebalance: true,
            input: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(
            both.check().unwrap_err().to_string(),
            "Only one of -i and -r may be specified"
        );
        let o = RecoverOptions {
            output: true,
            rebalance: true,
            ..Default::default()
        };
        assert!(o
            .check()
            .unwrap_err()
            .to_string()
            .contains("-o cannot be combined"));
        assert!(RecoverOptions::default().check().is_ok());
    }
}
