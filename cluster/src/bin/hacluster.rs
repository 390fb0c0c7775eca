//! `hacluster`: the cluster as real processes over real TCP and real files.
//!
//! One process per instance, all reading one `cluster.json` (see `init-local`):
//!
//! ```text
//! hacluster init-local --dir /tmp/c --base-port 15432
//! hacluster start --cluster /tmp/c/cluster.json
//! hacluster client --coordinator 127.0.0.1:15432 create-table t
//! hacluster client --coordinator 127.0.0.1:15432 insert t 1 hello
//! hacluster state --coordinator 127.0.0.1:15432
//! PGPASSWORD=$(cat /tmp/c/sql.password) psql -h 127.0.0.1 -p 15532 -U gpadmin -d postgres
//! hacluster stop --cluster /tmp/c/cluster.json
//! ```
//!
//! An instance process logs to standard error (`RUST_LOG` filters it); `start` sends each to
//! `DATADIR.log`. Answers meant for scripts are JSON on standard output.

// A binary's root file looks for its modules beside it; these live in `hacluster/`.
#[path = "hacluster/admin_cmd.rs"]
mod admin_cmd;
#[path = "hacluster/agent_cmd.rs"]
mod agent_cmd;
#[path = "hacluster/client_cmd.rs"]
mod client_cmd;
#[path = "hacluster/cluster_file.rs"]
mod cluster_file;
#[path = "hacluster/processes.rs"]
mod processes;
#[path = "hacluster/secret_file.rs"]
mod secret_file;
#[path = "hacluster/sql_cmd.rs"]
mod sql_cmd;
#[path = "hacluster/standby_cmd.rs"]
mod standby_cmd;

use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use cluster::client::Client;
use cluster::io::{Disk, RealDisk};
use cluster::model::catalog::Dbid;
use cluster_file::ClusterFile;

#[derive(Parser, Debug)]
#[command(
    name = "hacluster",
    about = "The HA MPP cluster as real processes",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Lay out a loopback cluster (coordinator, one primary, one mirror) in DIR/cluster.json,
    /// with the SQL front door's users (DIR/users, user gpadmin), rules (DIR/hba.conf) and,
    /// unless --sql-password-file names one, gpadmin's password (DIR/sql.password).
    InitLocal {
        #[arg(long)]
        dir: PathBuf,
        /// The coordinator's port; the primary and mirror take the next two.
        #[arg(long, default_value_t = 15432)]
        base_port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Lay out several hosts with mirrors placed by `group`, `spread` or `block:SIZE`
        /// (spread needs more hosts than primaries per host; block's size must divide the
        /// number of hosts).
        #[arg(long, requires = "hosts")]
        layout: Option<cluster::model::layout::Layout>,
        /// Loopback "hosts" for --layout (host1..hostN).
        #[arg(long, requires = "layout")]
        hosts: Option<usize>,
        /// Primaries per host for --layout.
        #[arg(long, default_value_t = 1)]
        primaries_per_host: usize,
        /// Where SQL clients (psql, drivers) connect [default: base port + 100].
        #[arg(long)]
        sql_port: Option<u16>,
        /// The SQL user gpadmin's password, the file's first line [default: a random one,
        /// written to DIR/sql.password].
        #[arg(long)]
        sql_password_file: Option<PathBuf>,
    },
    /// Lay out a cluster over named hosts (gpinitsystem's configuration file): write
    /// DIR/cluster.json and the cluster secret DIR/cluster.secret, and make no data directory.
    /// Then copy both files to every host (same path, the secret mode 0600), start each host's
    /// agent there (`hacluster agent --cluster FILE --host NAME`, or its systemd unit), and run
    /// `init --cluster FILE`.
    Plan {
        #[arg(long)]
        dir: PathBuf,
        /// The coordinator's host, NAME=ADDRESS (it may be a segment host too).
        #[arg(long, value_name = "NAME=ADDRESS")]
        coordinator_host: cluster_file::HostArg,
        /// A segment host, NAME=ADDRESS; repeat, in order (the layout numbers them so).
        #[arg(long = "segment-host", value_name = "NAME=ADDRESS", required = true)]
        segment_hosts: Vec<cluster_file::HostArg>,
        /// A spare host, NAME=ADDRESS: an agent and no instance, ready for `recoverseg -i`.
        #[arg(long = "spare-host", value_name = "NAME=ADDRESS")]
        spare_hosts: Vec<cluster_file::HostArg>,
        /// How mirrors are placed: group, spread (more hosts than primaries per host) or
        /// block:SIZE (SIZE divides the number of hosts).
        #[arg(long, default_value = "group")]
        layout: cluster::model::layout::Layout,
        #[arg(long, default_value_t = 1)]
        primaries_per_host: usize,
        /// The coordinator's port; the instances take the ports after it, the agents those
        /// after theirs.
        #[arg(long, default_value_t = 6000)]
        base_port: u16,
        /// Where every host keeps its data directories, as ROOT/NAME/... [default: DIR].
        #[arg(long)]
        data_root: Option<PathBuf>,
        /// Each host's log directory, LOGS/NAME (a file per process) [default: beside each data
        /// directory].
        #[arg(long)]
        log_root: Option<PathBuf>,
        /// The SQL user gpadmin's password, the file's first line [default: a random one,
        /// written to DIR/sql.password].
        #[arg(long)]
        sql_password_file: Option<PathBuf>,
    },
    /// Initialize the cluster a cluster file lays out (gpinitsystem -c): every host's agent
    /// gets the file and makes its instances' data directories, then the cluster starts
    /// through the agents. Nothing is made if any data directory exists already.
    Init {
        #[arg(long)]
        cluster: PathBuf,
        /// Then add a standby coordinator on this host (gpinitsystem -s), started by its agent,
        /// and wait until it is Synchronized.
        #[arg(short = 's', long = "standby-host", value_name = "HOST")]
        standby_host: Option<String>,
        #[command(flatten)]
        test: TestOnly,
    },
    /// Send the cluster file to every host's agent (each host then starts its instances where
    /// the file places them); the verbs that change the file do this themselves.
    SyncConfig {
        #[arg(long)]
        cluster: PathBuf,
    },
    /// Start every process of the cluster that is not running (gpstart): each host's agent
    /// (those of this machine's hosts that do not run yet), then through the agents the
    /// coordinator, the standby if there is one, every segment instance; each logs to
    /// DATADIR.log.
    Start {
        #[arg(long)]
        cluster: PathBuf,
        /// Only the processes of this host (as the cluster file names it).
        #[arg(long)]
        host: Option<String>,
        #[command(flatten)]
        test: TestOnly,
    },
    /// Stop every process of the cluster (gpstop), through each host's agent, then the
    /// agents.
    Stop {
        #[arg(long)]
        cluster: PathBuf,
        /// fast and smart: SIGTERM and wait (every instance is crash-safe); immediate: SIGKILL.
        #[arg(short = 'M', long, value_enum, default_value = "fast")]
        mode: processes::StopMode,
        /// Leave the hosts' agents running (as under a supervisor).
        #[arg(long)]
        keep_agents: bool,
        /// Only the processes of this host (gpstop --host), its agent left running.
        #[arg(long)]
        host: Option<String>,
    },
    /// Run the agent of one host until asked to exit or killed: it starts, stops and reports
    /// the instances the cluster file places on that host, for the verbs (the ssh of the
    /// gp utilities).
    Agent {
        #[arg(long)]
        cluster: PathBuf,
        /// The host, as the cluster file's `agents` list names it.
        #[arg(long)]
        host: String,
        #[command(flatten)]
        test: TestOnly,
    },
    /// Each host's agent, up or down, and the instances it reports; exit code 1 if one is
    /// down (a supervisor's health check).
    AgentStatus {
        #[arg(long)]
        cluster: PathBuf,
    },
    /// Run the coordinator (and its prober) until killed.
    Coordinator {
        #[arg(long)]
        cluster: PathBuf,
        #[command(flatten)]
        test: TestOnly,
    },
    /// Run one segment instance until it fails (exit code 1) or is killed.
    Segment {
        #[arg(long)]
        cluster: PathBuf,
        #[arg(long)]
        dbid: Dbid,
        /// A data directory just made for a copy: start as a mirror, whatever role the cluster
        /// file gives the instance (once the instance has run, its own data says its role).
        #[arg(long)]
        new_mirror: bool,
        #[command(flatten)]
        test: TestOnly,
    },
    /// Run one statement in its own transaction and print the answer as JSON. Exit code 1: it
    /// failed and nothing was committed; 2: a commit's outcome is unknown.
    Client {
        #[command(flatten)]
        target: CoordinatorArgs,
        #[command(subcommand)]
        statement: client_cmd::Statement,
    },
    /// Print the cluster's status summary, as `gpstate` does; with a flag, one of gpstate's
    /// other views.
    State {
        #[command(flatten)]
        target: CoordinatorArgs,
        /// The segment configuration as a table, primaries and their mirrors (`gpstate -c`).
        #[arg(short = 'c', group = "view")]
        config: bool,
        /// Error conditions: roles switched, unsynchronized pairs, downed instances.
        #[arg(short = 'e', group = "view")]
        errors: bool,
        /// Mirrors: passive, acting as primary, failed; and their data status.
        #[arg(short = 'm', group = "view")]
        mirrors: bool,
        /// The standby coordinator.
        #[arg(short = 'f', group = "view")]
        standby: bool,
        /// Every instance in detail, with WAL positions.
        #[arg(short = 's', group = "view")]
        detail: bool,
        /// The cluster file: the summary then shows each host's agent, up or down.
        #[arg(long)]
        cluster: Option<PathBuf>,
    },
    /// Recover failed segment instances (gprecoverseg): incremental by default.
    Recoverseg {
        #[command(flatten)]
        target: CoordinatorArgs,
        /// Full copy instead of an incremental rewind.
        #[arg(short = 'F')]
        full: bool,
        /// Return every instance to its preferred role (all pairs must be synchronized).
        #[arg(short = 'r')]
        rebalance: bool,
        /// Recovery file: `failedAddress|failedPort|failedDataDirectory [newAddress|newPort|newDataDirectory]` lines.
        #[arg(short = 'i')]
        input: Option<PathBuf>,
        /// Write a sample recovery file listing the failed instances.
        #[arg(short = 'o')]
        output: Option<PathBuf>,
        /// The cluster file (needed to start instances at new locations).
        #[arg(long)]
        cluster: Option<PathBuf>,
    },
    /// Add mirrors to an unmirrored cluster (gpaddmirrors).
    AddMirrors {
        #[command(flatten)]
        target: CoordinatorArgs,
        /// Mirror ports: the lowest primary port on the mirror's host + its index + OFFSET.
        #[arg(short = 'p')]
        offset: Option<u16>,
        /// How -p places mirrors: group (default) or spread (needs more hosts than primaries
        /// per host).
        #[arg(long, default_value = "group")]
        mirror_mode: cluster::model::layout::Layout,
        /// Mirror file: `content|address|port|dataDirectory` lines.
        #[arg(short = 'i')]
        input: Option<PathBuf>,
        /// Write the mirror file `-p 1000` would use.
        #[arg(short = 'o')]
        output: Option<PathBuf>,
        #[arg(long)]
        cluster: PathBuf,
    },
    /// Stop every process of the cluster and start them again (gpstop -r): the way back after
    /// a double fault, before recoverseg.
    Restart {
        #[arg(long)]
        cluster: PathBuf,
        /// Only the processes of this host (as the cluster file names it).
        #[arg(long)]
        host: Option<String>,
        #[command(flatten)]
        test: TestOnly,
    },
    /// Move mirrors (gpmovemirrors); writes a backout file beside the input.
    MoveMirrors {
        #[command(flatten)]
        target: CoordinatorArgs,
        /// `oldAddress|oldPort|oldDataDirectory newAddress|newPort|newDataDirectory` lines.
        #[arg(short = 'i')]
        input: PathBuf,
        #[arg(long)]
        cluster: PathBuf,
    },
    /// Add a standby coordinator (`-s HOST`), resynchronize the configured one (`-n`), or
    /// remove it (`-r`, gpinitstandby -r), as gpinitstandby does; `-s` and `-n` wait until it
    /// is Synchronized and print the mirroring state.
    InitStandby(standby_cmd::InitStandbyArgs),
    /// Promote the standby coordinator once the coordinator is gone (gpactivatestandby), and
    /// record it in the cluster file as the coordinator.
    ActivateStandby {
        /// The cluster file: its standby is activated, and becomes its coordinator.
        #[arg(long)]
        cluster: PathBuf,
        #[arg(long, default_value_t = 60_000)]
        timeout_ms: u64,
    },
    /// Print the standby's mirroring state (Not Configured / Synchronized / Not Synchronized).
    StandbyState {
        #[command(flatten)]
        target: CoordinatorArgs,
    },
    /// Run a standby coordinator until killed (`init-standby` starts it).
    Standby(standby_cmd::StandbyArgs),
    /// Add a SQL user or change its password (in `users` beside the cluster file; running
    /// coordinators read it at each connection).
    SqlUser {
        #[arg(long)]
        cluster: PathBuf,
        #[arg(long)]
        user: String,
        /// The password, the file's first line [default: the first line of standard input].
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Rotate the cluster secret (`cluster.secret` beside the cluster file): a new secret, the
    /// old one still accepted until `--finish`; restart the processes in between.
    RotateSecret {
        #[arg(long)]
        cluster: PathBuf,
        /// Drop the previous secret (once every process runs with the new one).
        #[arg(long)]
        finish: bool,
    },
}

/// Options for testing the cluster's tests, never for real use.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct TestOnly {
    /// Run the planted bugs the cluster file names (deliberate defects that prove the
    /// simulator's checkers can fire); without it a process refuses a file that names any.
    #[arg(long, hide = true)]
    pub allow_planted_bugs: bool,
}

#[derive(clap::Args, Debug)]
struct CoordinatorArgs {
    /// Coordinator address `ip:port` (repeat for a standby: the first that answers is used).
    #[arg(long = "coordinator", required = true)]
    coordinators: Vec<String>,
    /// How long one request may take.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// The cluster secret file (`cluster.secret` beside the cluster file); without it,
    /// `$HACLUSTER_SECRET` names it.
    #[arg(long)]
    secret: Option<PathBuf>,
}

impl CoordinatorArgs {
    fn secret_path(&self) -> anyhow::Result<PathBuf> {
        match (&self.secret, std::env::var_os(secret_file::ENV)) {
            (Some(path), _) => Ok(path.clone()),
            (None, Some(path)) => Ok(PathBuf::from(path)),
            (None, None) => anyhow::bail!(
                "no cluster secret: pass --secret FILE or set ${} (the {} that init-local wrote \
                 beside the cluster file); every connection to the cluster is authenticated",
                secret_file::ENV,
                secret_file::FILE_NAME
            ),
        }
    }
}

impl CoordinatorArgs {
    fn client(&self) -> Client {
        Client::new(
            self.coordinators.clone(),
            Duration::from_millis(self.timeout_ms),
        )
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Servers log their progress; one-shot commands only what went wrong.
    let default_level = match cli.command {
        Command::Coordinator { .. } | Command::Segment { .. } | Command::Standby(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hacluster: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the cluster secret and installs this process's credentials, for every verb that opens
/// or accepts connections: the secret file beside the cluster file, or the one a
/// `--coordinator` verb is given.
fn install_credentials(command: &Command) -> anyhow::Result<()> {
    use cluster::io::auth::PeerIdentity;
    let (path, identity) = match command {
        Command::InitLocal { .. }
        | Command::Plan { .. }
        | Command::RotateSecret { .. }
        | Command::SqlUser { .. } => return Ok(()),
        Command::Agent { cluster, host, .. } => {
            (secret_file::beside(cluster), PeerIdentity::agent(host))
        }
        Command::AgentStatus { cluster } => (secret_file::beside(cluster), PeerIdentity::Admin),
        Command::Start { cluster, .. }
        | Command::Init { cluster, .. }
        | Command::SyncConfig { cluster }
        | Command::Stop { cluster, .. }
        | Command::Restart { cluster, .. }
        | Command::ActivateStandby { cluster, .. } => {
            (secret_file::beside(cluster), PeerIdentity::Admin)
        }
        Command::InitStandby(args) => (secret_file::beside(&args.cluster), PeerIdentity::Admin),
        Command::Coordinator { cluster, .. } => {
            (secret_file::beside(cluster), PeerIdentity::Coordinator)
        }
        Command::Segment { cluster, dbid, .. } => (
            secret_file::beside(cluster),
            PeerIdentity::Segment { dbid: *dbid },
        ),
        Command::Standby(args) => {
            let dbid = ClusterFile::load(&args.cluster)?
                .standby
                .map(|s| s.dbid)
                .unwrap_or_default();
            (
                secret_file::beside(&args.cluster),
                PeerIdentity::Standby { dbid },
            )
        }
        Command::Client { target, .. } => (target.secret_path()?, PeerIdentity::Client),
        Command::Recoverseg {
            target,
            cluster: Some(cluster),
            ..
        } if target.secret.is_none() && std::env::var_os(secret_file::ENV).is_none() => {
            (secret_file::beside(cluster), PeerIdentity::Admin)
        }
        Command::State { target, .. }
        | Command::Recoverseg { target, .. }
        | Command::AddMirrors { target, .. }
        | Command::MoveMirrors { target, .. }
        | Command::StandbyState { target } => (target.secret_path()?, PeerIdentity::Admin),
    };
    secret_file::install(&path, identity)
}

/// Carries out one verb. Servers run until stopped; every other verb prints its answer (text for
/// people, JSON where scripts read it) and returns.
async fn run(command: Command) -> anyhow::Result<ExitCode> {
    install_credentials(&command)?;
    let text = match command {
        Command::RotateSecret { cluster, finish } => {
            secret_file::rotate(&secret_file::beside(&cluster), finish)?
        }
        Command::SqlUser {
            cluster,
            user,
            password_file,
        } => format!(
            "{}\n",
            sql_cmd::sql_user(&cluster, &user, password_file.as_deref())?
        ),
        Command::InitLocal {
            dir,
            base_port,
            host,
            layout,
            hosts,
            primaries_per_host,
            sql_port,
            sql_password_file,
        } => {
            let shape = match (layout, hosts) {
                (Some(layout), Some(hosts)) => Some(cluster_file::LocalShape {
                    hosts,
                    per_host: primaries_per_host,
                    layout,
                }),
                _ => None,
            };
            init_local(
                &dir,
                &host,
                base_port,
                sql_port,
                shape,
                sql_password_file.as_deref(),
            )?
        }
        Command::Plan {
            dir,
            coordinator_host,
            segment_hosts,
            spare_hosts,
            layout,
            primaries_per_host,
            base_port,
            data_root,
            log_root,
            sql_password_file,
        } => {
            let plan = cluster_file::Plan {
                coordinator: coordinator_host,
                segment_hosts,
                spare_hosts,
                per_host: primaries_per_host,
                layout,
                base_port,
                data_root,
                log_root,
            };
            let (path, file) = cluster_file::plan(&dir, &plan)?;
            let password = sql_cmd::create(&path, sql_password_file.as_deref())?;
            summary(&path, &file, password)?
        }
        Command::Init {
            cluster,
            standby_host,
            test,
        } => {
            if !sql_cmd::users_path(&cluster).exists() {
                if let Some(saved) = sql_cmd::create(&cluster, None)? {
                    eprintln!(
                        "hacluster: SQL user {} with the password in {}",
                        sql_cmd::FIRST_USER,
                        saved.display()
                    );
                }
            }
            let mut text = agent_cmd::init(&cluster, test.allow_planted_bugs).await?;
            if let Some(host) = standby_host {
                print!("{text}");
                let args = standby_cmd::InitStandbyArgs::add(cluster, host, test);
                text = format!("{}\n", standby_cmd::init_standby(args).await?);
            }
            text
        }
        Command::SyncConfig { cluster } => agent_cmd::push_config(&cluster).await?,
        Command::Start {
            cluster,
            host,
            test,
        } => {
            let file = ClusterFile::load(&cluster)?;
            let only = agent_cmd::Only::new(&file, host)?;
            agent_cmd::start(&file, &cluster, &only, test.allow_planted_bugs).await?
        }
        Command::Stop {
            cluster,
            mode,
            keep_agents,
            host,
        } => {
            let file = ClusterFile::load(&cluster)?;
            let only = agent_cmd::Only::new(&file, host)?;
            agent_cmd::stop(&file, &cluster, mode, &only, keep_agents).await?
        }
        Command::Restart {
            cluster,
            host,
            test,
        } => {
            let file = ClusterFile::load(&cluster)?;
            let stop = processes::StopMode::Fast;
            let only = agent_cmd::Only::new(&file, host)?;
            print!(
                "{}",
                agent_cmd::stop(&file, &cluster, stop, &only, true).await?
            );
            agent_cmd::start(&file, &cluster, &only, test.allow_planted_bugs).await?
        }
        Command::Agent {
            cluster,
            host,
            test,
        } => {
            until_signalled(agent_cmd::serve(&cluster, &host, test.allow_planted_bugs))
                .await?
                .transpose()?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::AgentStatus { cluster } => {
            let (text, all_up) = agent_cmd::status(&ClusterFile::load(&cluster)?).await?;
            print!("{text}");
            return Ok(if all_up {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Coordinator { cluster, test } => return serve_coordinator(&cluster, test).await,
        Command::Segment {
            cluster,
            dbid,
            new_mirror,
            test,
        } => return serve_segment(&cluster, dbid, new_mirror, test).await,
        Command::Standby(args) => {
            if until_signalled(standby_cmd::run_standby(args))
                .await?
                .transpose()?
                .is_none()
            {
                return Ok(ExitCode::SUCCESS);
            }
            anyhow::bail!("standby coordinator stopped without an error")
        }
        Command::Client { target, statement } => return client(target, statement).await,
        Command::State {
            target,
            config,
            errors,
            mirrors,
            standby,
            detail,
            cluster,
        } => {
            let mut text = state(target, config, errors, mirrors, standby, detail).await?;
            if let Some(cluster) = cluster {
                let file = ClusterFile::load(&cluster)?;
                if let Some(sql) = file.coordinator.sql_endpoint() {
                    text.push_str(&format!(
                        "SQL clients: {sql} (psql -h {} -p {} -U {} -d postgres)\n",
                        file.coordinator.address,
                        file.coordinator.sql_port.unwrap_or_default(),
                        sql_cmd::FIRST_USER
                    ));
                }
                let (agents, _) = agent_cmd::status(&file).await?;
                text.push_str("Agents:\n");
                for line in agents.lines().filter(|l| !l.starts_with("  ")) {
                    text.push_str(&format!("  {line}\n"));
                }
            }
            text
        }
        command => return admin_verb(command).await,
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// gpstate's views: the summary, or the one a flag picks.
async fn state(
    target: CoordinatorArgs,
    config: bool,
    errors: bool,
    mirrors: bool,
    standby: bool,
    detail: bool,
) -> anyhow::Result<String> {
    use cluster::admin::state::View;
    let view = match (errors, mirrors, standby, detail) {
        (true, ..) => View::Errors,
        (_, true, ..) => View::Mirrors,
        (_, _, true, _) => View::Standby,
        (.., true) => View::Detail,
        _ => View::Summary,
    };
    let mut client = target.client();
    if config {
        client_cmd::state(&mut client).await
    } else {
        admin_cmd::state(&mut client, view).await
    }
}

/// The recovery and standby verbs (gprecoverseg, gpaddmirrors, gpmovemirrors, gpinitstandby,
/// gpactivatestandby): each prints what it did.
async fn admin_verb(command: Command) -> anyhow::Result<ExitCode> {
    let text = match command {
        Command::Recoverseg {
            target,
            full,
            rebalance,
            input,
            output,
            cluster,
        } => {
            let hosts = agent_cmd::LocalAgents::new(cluster);
            admin_cmd::recoverseg(&mut target.client(), &hosts, full, rebalance, input, output)
                .await?
        }
        Command::AddMirrors {
            target,
            offset,
            mirror_mode,
            input,
            output,
            cluster,
        } => {
            let hosts = agent_cmd::LocalAgents::new(Some(cluster));
            admin_cmd::add_mirrors(
                &mut target.client(),
                &hosts,
                offset,
                mirror_mode,
                input,
                output,
            )
            .await?
        }
        Command::MoveMirrors {
            target,
            input,
            cluster,
        } => {
            let hosts = agent_cmd::LocalAgents::new(Some(cluster));
            admin_cmd::move_mirrors(&mut target.client(), &hosts, input).await?
        }
        Command::InitStandby(args) => format!("{}\n", standby_cmd::init_standby(args).await?),
        Command::ActivateStandby {
            cluster,
            timeout_ms,
        } => format!("{}\n", standby_cmd::activate(&cluster, timeout_ms).await?),
        Command::StandbyState { target } => {
            format!("{}\n", standby_cmd::state(&mut target.client()).await?)
        }
        other => unreachable!("{other:?} is not an admin verb"),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Lays out a loopback cluster and returns a JSON summary of what it made.
fn init_local(
    dir: &std::path::Path,
    host: &str,
    base_port: u16,
    sql_port: Option<u16>,
    shape: Option<cluster_file::LocalShape>,
    sql_password_file: Option<&std::path::Path>,
) -> anyhow::Result<String> {
    let (path, file) = cluster_file::init_local(dir, host, base_port, sql_port, shape)?;
    let password = sql_cmd::create(&path, sql_password_file)?;
    summary(&path, &file, password)
}

/// Writes the new cluster's secret beside its file; a JSON summary of what was laid out.
fn summary(
    path: &std::path::Path,
    file: &ClusterFile,
    sql_password: Option<PathBuf>,
) -> anyhow::Result<String> {
    let secret = secret_file::beside(path);
    secret_file::create(&secret, file.cluster_id()?)?;
    let summary = serde_json::json!({
        "cluster_file": path,
        "secret_file": secret,
        "coordinator": file.coordinator.endpoint(),
        "sql": file.coordinator.sql_endpoint(),
        "sql_user": sql_cmd::FIRST_USER,
        "sql_password_file": sql_password,
        "segments": file.segments.iter().map(|s| serde_json::json!({
            "dbid": s.dbid, "content": s.content, "role": s.role, "address": s.endpoint(), "datadir": s.datadir,
        })).collect::<Vec<_>>(),
        "agents": file.agents.iter().map(|a| serde_json::json!({
            "host": a.hostname, "address": a.endpoint(),
        })).collect::<Vec<_>>(),
    });
    Ok(format!("{summary}\n"))
}

/// Runs the coordinator (and its prober) on its locked data directory until stopped.
async fn serve_coordinator(cluster: &std::path::Path, test: TestOnly) -> anyhow::Result<ExitCode> {
    let mut file = ClusterFile::load(cluster)?;
    file.allow_planted_bugs = test.allow_planted_bugs;
    let mut cfg = file.coordinator_config()?;
    let datadir = file.coordinator.datadir.clone();
    let _lock = processes::DataDirLock::acquire(&datadir, "coordinator")?;
    let disk = real_disk(&datadir)?;
    // The SQL front door: its files are checked and its port bound now, so a bad line or a
    // taken port stops the start; it opens once the coordinator's services run.
    if let Some(port) = file.coordinator.sql_port {
        let door = sql_cmd::frontdoor_config(&file, cluster, &file.coordinator.address, port)?;
        let listener = cluster::frontdoor::bind(&door.listen_addr)
            .with_context(|| format!("the SQL front door cannot listen on {}", door.listen_addr))?;
        cfg.on_services = Some(cluster::frontdoor::hook(door, Some(listener)));
    }
    info!(listen = %cfg.listen_addr, datadir = %datadir.display(), "starting coordinator");
    let Some(result) = until_signalled(cluster::coordinator::run(cfg, disk)).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    result.context("coordinator stopped")?;
    anyhow::bail!("coordinator stopped without an error")
}

/// Runs one segment instance on its locked data directory until it fails or is stopped.
async fn serve_segment(
    cluster: &std::path::Path,
    dbid: Dbid,
    new_mirror: bool,
    test: TestOnly,
) -> anyhow::Result<ExitCode> {
    let mut file = ClusterFile::load(cluster)?;
    file.allow_planted_bugs = test.allow_planted_bugs;
    let (mut cfg, datadir) = file.instance_config(dbid)?;
    if new_mirror {
        cfg.initial_role = cluster::model::catalog::Role::Mirror;
    }
    let _lock = processes::DataDirLock::acquire(&datadir, &format!("segment --dbid {dbid}"))?;
    let disk = real_disk(&datadir)?;
    info!(dbid, content = cfg.content, listen = %cfg.listen_addr, peer = ?cfg.peer_addr, datadir = %datadir.display(), "starting segment instance");
    let Some(result) = until_signalled(cluster::segment::run(cfg, disk)).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    result.with_context(|| format!("segment instance dbid {dbid} stopped"))?;
    anyhow::bail!("segment instance dbid {dbid} stopped without an error")
}

/// Runs one statement; the exit code says whether it committed (0), failed (1) or has an
/// unknown outcome (2).
async fn client(
    target: CoordinatorArgs,
    statement: client_cmd::Statement,
) -> anyhow::Result<ExitCode> {
    let mut client = target.client();
    let (outcome, error, code) = match client_cmd::run(&mut client, statement).await {
        client_cmd::Outcome::Done(answer) => {
            println!("{answer}");
            return Ok(ExitCode::SUCCESS);
        }
        client_cmd::Outcome::Failed(error) => ("failed", error, 1),
        client_cmd::Outcome::Unknown(error) => ("unknown", error, 2),
    };
    println!(
        "{}",
        serde_json::json!({ "outcome": outcome, "error": error })
    );
    Ok(ExitCode::from(code))
}

/// The data directory, which must exist (only init and a full recovery make one).
fn real_disk(datadir: &std::path::Path) -> anyhow::Result<Arc<dyn Disk>> {
    if !datadir.is_dir() {
        anyhow::bail!("data directory {} does not exist", datadir.display());
    }
    let disk = RealDisk::new(datadir)
        .with_context(|| format!("cannot open data directory {}", datadir.display()))?;
    Ok(Arc::new(disk))
}

/// Runs a server until it returns or the process is asked to stop (SIGTERM, ctrl-c): `None`
/// then. Stopping needs no shutdown protocol: every instance is crash-safe (what it acknowledged
/// is flushed), so leaving at any point is what a crash is, and restart runs recovery.
async fn until_signalled<F: Future>(server: F) -> anyhow::Result<Option<F::Output>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    tokio::select! {
        result = server => Ok(Some(result)),
        _ = terminate.recv() => {
            warn!("SIGTERM: stopping");
            Ok(None)
        }
        _ = tokio::signal::ctrl_c() => {
            warn!("interrupted: stopping");
            Ok(None)
        }
    }
}
