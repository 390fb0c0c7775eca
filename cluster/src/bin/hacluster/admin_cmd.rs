//! The administration verbs over real I/O: `recoverseg`, `add-mirrors`, `move-mirrors`,
//! `state`. They run [`cluster::admin::driver`] against the coordinator; where a verb needs a
//! new instance process (a mirror on a new host or directory, or a full copy in place), the
//! agent of its host ([`crate::agent_cmd`]) makes its data directory anew, records it in the
//! cluster file and starts `hacluster segment` for it; a moved instance is stopped the same
//! way.

use std::path::PathBuf;

use anyhow::Context;

use cluster::admin::driver::{self, Hosts, MirrorSource, RecoverOptions, RecoverOutcome};
use cluster::admin::state::View;
use cluster::client::Client;

/// `recoverseg`: prints what happened; writes `-o`'s sample.
pub async fn recoverseg(
    client: &mut Client,
    hosts: &impl Hosts,
    full: bool,
    rebalance: bool,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
) -> anyhow::Result<String> {
    let input = match &input {
        Some(p) => Some(
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
        None => None,
    };
    let opts = RecoverOptions {
        full,
        rebalance,
        input,
        output: output.is_some(),
    };
    let out = driver::recoverseg(client, hosts, &opts)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(match out {
        RecoverOutcome::Recovered(r) if r.iter().any(|r| r.outcome.is_err()) => {
            anyhow::bail!("{}", driver::describe_recovered(&r).trim_end())
        }
        RecoverOutcome::Recovered(r) => driver::describe_recovered(&r),
        RecoverOutcome::Rebalanced(c) if c.is_empty() => {
            "Every instance is in its preferred role\n".into()
        }
        RecoverOutcome::Rebalanced(c) => {
            format!("Contents returned to their preferred roles: {c:?}\n")
        }
        RecoverOutcome::Relocated(cat) => format!(
            "Recorded at configuration epoch {}; the new mirrors are resynchronizing\n",
            cluster::model::catalog::epoch::describe(cat.epoch)
        ),
        RecoverOutcome::Sample(text) => {
            let path = output.expect("-o given");
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            format!("Sample recovery file written to {}\n", path.display())
        }
    })
}

/// `add-mirrors -p OFFSET | -i FILE | -o FILE`.
pub async fn add_mirrors(
    client: &mut Client,
    hosts: &impl Hosts,
    offset: Option<u16>,
    layout: cluster::model::layout::Layout,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
) -> anyhow::Result<String> {
    let given = [offset.is_some(), input.is_some(), output.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        anyhow::bail!("Only one of -p, -i and -o may be specified");
    }
    let source = match (offset, &input, &output) {
        (_, Some(p), _) => MirrorSource::File(
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
        (_, _, Some(_)) => MirrorSource::Sample,
        (Some(o), _, _) => MirrorSource::Offset(o, layout),
        (None, None, None) => MirrorSource::Offset(1000, layout),
    };
    match driver::add_mirrors(client, hosts, &source)
        .await
        .map_err(anyhow::Error::msg)?
    {
        Ok(cat) => Ok(format!(
            "Mirrors added at configuration epoch {}; they are resynchronizing\n",
            cluster::model::catalog::epoch::describe(cat.epoch)
        )),
        Err(sample) => {
            let path = output.expect("-o given");
            std::fs::write(&path, sample)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(format!(
                "Sample mirror file written to {}\n",
                path.display()
            ))
        }
    }
}

/// `move-mirrors -i FILE`: writes the backout file beside the input.
pub async fn move_mirrors(
    client: &mut Client,
    hosts: &impl Hosts,
    input: PathBuf,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&input)
        .with_context(|| format!("cannot read {}", input.display()))?;
    let (cat, backout) = driver::move_mirrors(client, hosts, &text)
        .await
        .map_err(anyhow::Error::msg)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let path = PathBuf::from(format!("{}_backout_{stamp}", input.display()));
    std::fs::write(&path, backout).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(format!(
        "Mirrors moved at configuration epoch {}; backout file: {}\n",
        cluster::model::catalog::epoch::describe(cat.epoch),
        path.display()
    ))
}

/// `state [-e|-m|-f|-s]`.
pub async fn state(client: &mut Client, view: View) -> anyhow::Result<String> {
    driver::state(client, view)
        .await
        .map_err(anyhow::Error::msg)
}
