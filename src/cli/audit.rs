//! `clientele audit`: the admin actions (API.md §7), oldest first.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::duration::parse_duration;
use super::output::{print_json, print_table, time_cell, time_json};
use crate::domain::time::now_unix;
use crate::storage::SharedStore;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How far back to list (N followed by s, m, h or d).
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    since: Duration,
    /// Print a JSON array of {"at", "actor", "action", "target", "detail"}, for scripts.
    #[arg(long)]
    json: bool,
}

pub async fn run(store: &SharedStore, args: AuditArgs) -> anyhow::Result<()> {
    let since = now_unix().saturating_sub(i64::try_from(args.since.as_secs()).unwrap_or(i64::MAX));
    let entries = store.list_audit(since).await.context("cannot read the audit log")?;
    if args.json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({"at": time_json(Some(e.at)), "actor": e.actor, "action": e.action.as_str(),
                       "target": e.target, "detail": e.detail})
            })
            .collect();
        return print_json(&rows);
    }
    let rows: Vec<_> = entries
        .iter()
        .map(|e| {
            vec![
                time_cell(Some(e.at)),
                e.actor.clone(),
                e.action.as_str().to_owned(),
                e.target.clone(),
                e.detail.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    print_table(&["TIME", "ACTOR", "ACTION", "TARGET", "DETAIL"], &rows)
}
