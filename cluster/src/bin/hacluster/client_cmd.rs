//! The `client` and `state` subcommands: one statement per transaction through the coordinator,
//! answers as JSON on standard output; and the segment configuration as a table, as `gpstate`
//! shows it.

use std::fmt::Write as _;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value as Json};

use cluster::client::Client;
use cluster::model::catalog::{Catalog, Content, Mode, Role, Status};
use cluster::wal::{Key, TableKind};
use cluster::wire::DbError;

#[derive(Subcommand, Debug)]
pub enum Statement {
    /// Create a table on every content (heap unless --ao).
    CreateTable {
        name: String,
        /// Append-optimized: rows are only appended; no updates or deletes.
        #[arg(long)]
        ao: bool,
    },
    /// Insert one row (the value is stored as its UTF-8 bytes).
    Insert {
        table: String,
        key: Key,
        value: String,
    },
    /// Read one row by key.
    Get { table: String, key: Key },
    /// Every row of a table, on one content or (by default) on each content in turn.
    Scan {
        table: String,
        #[arg(long)]
        content: Option<Content>,
    },
    /// The segment configuration, epoch included.
    Catalog,
}

/// How a statement ended, for scripts: the exit code says whether anything may have committed.
pub enum Outcome {
    Done(Json),
    /// Nothing was committed (exit code 1).
    Failed(String),
    /// The commit may or may not have happened (exit code 2).
    Unknown(String),
}

impl From<DbError> for Outcome {
    fn from(e: DbError) -> Outcome {
        match e {
            DbError::Failed(msg) => Outcome::Failed(msg),
            DbError::Unknown(msg) => Outcome::Unknown(msg),
            refused @ DbError::NotAllowed { .. } => Outcome::Failed(refused.to_string()),
        }
    }
}

/// A value as JSON: a string when it is UTF-8 (as values written by `insert` are), else bytes.
fn value_json(value: &[u8]) -> Json {
    match std::str::from_utf8(value) {
        Ok(text) => Json::String(text.to_string()),
        Err(_) => json!(value),
    }
}

pub async fn run(client: &mut Client, statement: Statement) -> Outcome {
    match execute(client, statement).await {
        Ok(json) => Outcome::Done(json),
        Err(e) => {
            // Best effort: the coordinator drops a failed transaction itself.
            let _ = client.abort().await;
            e.into()
        }
    }
}

async fn execute(client: &mut Client, statement: Statement) -> Result<Json, DbError> {
    match statement {
        Statement::CreateTable { name, ao } => {
            let kind = if ao {
                TableKind::AppendOptimized
            } else {
                TableKind::Heap
            };
            client.create_table(&name, kind).await?;
            Ok(json!({ "created": name, "kind": format!("{kind:?}") }))
        }
        Statement::Insert { table, key, value } => {
            client.begin().await?;
            client.insert(&table, key, value.into_bytes()).await?;
            client.commit().await?;
            Ok(json!({ "committed": true, "table": table, "key": key }))
        }
        Statement::Get { table, key } => {
            client.begin().await?;
            let row = client.get(&table, key).await?;
            // A read has nothing to make durable, and must not wait on a mirror: end it with abort.
            client.abort().await?;
            Ok(json!({ "table": table, "key": key, "value": row.as_deref().map(value_json) }))
        }
        Statement::Scan { table, content } => {
            let contents = match content {
                Some(c) => vec![c],
                None => client.catalog().await?.contents(),
            };
            let mut rows = Vec::new();
            // Transactions are single-content: one per content.
            for content in contents {
                client.begin().await?;
                let found = client.scan(&table, content).await?;
                client.abort().await?;
                rows.extend(
                    found
                        .into_iter()
                        .map(|(key, value)| json!({ "content": content, "key": key, "value": value_json(&value) })),
                );
            }
            Ok(json!({ "table": table, "rows": rows }))
        }
        Statement::Catalog => {
            let catalog = client.catalog().await?;
            Ok(serde_json::to_value(&catalog).expect("the catalog always encodes"))
        }
    }
}

/// `gpstate -c`: one line per instance, content order, primary first. A `*` marks an instance
/// not in its preferred role (a failover happened and no rebalance since).
pub fn state_table(catalog: &Catalog) -> String {
    let mut rows: Vec<_> = catalog.segments.values().collect();
    rows.sort_by_key(|s| (s.content, s.role, s.dbid));
    let header = [
        "dbid",
        "content",
        "role",
        "preferred role",
        "mode",
        "status",
        "address:port",
        "datadir",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(String::from)];
    for s in &rows {
        let role = role_name(s.role);
        let marked = if s.role != s.preferred_role {
            format!("{role} *")
        } else {
            role.to_string()
        };
        table.push([
            s.dbid.to_string(),
            s.content.to_string(),
            marked,
            role_name(s.preferred_role).to_string(),
            match s.mode {
                Mode::Synced => "Synced",
                Mode::NotSynced => "Not In Sync",
            }
            .to_string(),
            match s.status {
                Status::Up => "Up",
                Status::Down => "Down",
            }
            .to_string(),
            s.endpoint(),
            s.datadir.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "configuration epoch {}\n",
        cluster::model::catalog::epoch::describe(catalog.epoch)
    );
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    if rows.iter().any(|s| s.role != s.preferred_role) {
        out.push_str("* not in its preferred role\n");
    }
    out
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Primary => "Primary",
        Role::Mirror => "Mirror",
    }
}

pub async fn state(client: &mut Client) -> anyhow::Result<String> {
    let catalog = client
        .catalog()
        .await
        .context("cannot read the segment configuration from the coordinator")?;
    Ok(state_table(&catalog))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::model::catalog::SegmentConfig;

    #[test]
    fn the_state_table_marks_instances_out_of_their_preferred_role() {
        let row = |dbid, role, preferred_role, status| SegmentConfig {
            dbid,
            content: 0,
            role,
            preferred_role,
            mode: Mode::NotSynced,
            status,
            hostname: "localhost".into(),
            address: "127.0.0.1".into(),
            port: 7000 + dbid,
            datadir: format!("/d/{dbid}"),
        };
        let catalog = Catalog {
            epoch: 4,
            segments: [
                (2, row(2, Role::Mirror, Role::Primary, Status::Down)),
                (3, row(3, Role::Primary, Role::Mirror, Status::Up)),
            ]
            .into(),
        };
        let expected = "\
configuration epoch 4
dbid  content  role       preferred role  mode         status  address:port    datadir
3     0        Primary *  Mirror          Not In Sync  Up      127.0.0.1:7003  /d/3
2     0        Mirror *   Primary         Not In Sync  Down    127.0.0.1:7002  /d/2
* not in its preferred role
";
        assert_eq!(state_table(&catalog), expected);
    }
}
