//! `gadget list`, `gadget delete` and `gadget attach`: clients of the daemon's local API.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use gadget_api::{self as api, InstanceInfo, Reply, Request};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format: columns or json.
    #[arg(short = 'o', long = "output", default_value = "columns", value_parser = ["columns", "json"])]
    pub output: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Instance IDs (or unique ID prefixes) or names.
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Instance ID (or unique prefix) or name.
    pub target: String,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Where instances are persisted.
    #[arg(long, env = "GADGET_STATE_DIR", default_value = gadget_daemon::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Serve the Prometheus endpoint (and /healthz, /readyz).
    #[arg(long = "otel-metrics-listen", default_value_t = true, action = clap::ArgAction::Set)]
    pub otel_metrics_listen: bool,
    /// Address of the Prometheus endpoint.
    #[arg(long = "otel-metrics-listen-address", default_value = gadget_operators::metrics::server::DEFAULT_ADDRESS)]
    pub otel_metrics_listen_address: String,
    /// Serve the cluster CLI's API (reached through the API server's pod proxy) on this address.
    #[arg(long = "api-listen-address", requires = "api_token_file")]
    pub api_listen_address: Option<String>,
    /// File holding the cluster API's bearer token (the gadget-api-token Secret, mounted).
    #[arg(long = "api-token-file", requires = "api_listen_address")]
    pub api_token_file: Option<PathBuf>,
    /// Open connections allowed on each listener (socket, metrics, cluster API); at the cap the
    /// oldest idle one is closed, or the new one refused if all are busy.
    #[arg(long, default_value_t = gadget_net::ConnectionLimits::default().max_connections, value_parser = clap::value_parser!(usize))]
    pub max_connections: usize,
    /// Time a client has to send a complete request (HTTP head or socket request line);
    /// idle keep-alive connections close after it too.
    #[arg(long, default_value = "10s", value_parser = gadget_model::duration::parse_positive)]
    pub header_timeout: std::time::Duration,
    /// Let a run request turn image signature verification off (`--verify-image=false` on a
    /// client, `operator.oci.verify-image: "false"` in a manifest); without this the daemon
    /// refuses such requests, and only its own configuration can turn verification off.
    #[arg(long, env = "GADGET_ALLOW_UNVERIFIED_REQUESTS")]
    pub allow_unverified_requests: bool,
    /// Time a reply or a request body may make no progress before the connection is closed.
    #[arg(long, default_value = "60s", value_parser = gadget_model::duration::parse_positive)]
    pub idle_timeout: std::time::Duration,
}

impl DaemonArgs {
    pub fn connection_limits(&self) -> gadget_net::ConnectionLimits {
        gadget_net::ConnectionLimits {
            max_connections: self.max_connections.max(1),
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

/// IG's columns: ID (12 characters), NAME, TAGS, GADGET, STATUS.
pub const COLUMNS: [&str; 5] = ["ID", "NAME", "TAGS", "GADGET", "STATUS"];

/// One instance's cells under [`COLUMNS`].
pub fn cells(i: &InstanceInfo) -> Vec<String> {
    // Every cell comes from a client or a saved file: escaped, one line each.
    [
        gadget_model::short_id(&i.id).to_string(),
        i.name.clone(),
        i.tags.join(","),
        i.gadget.clone(),
        i.status.lines().next().unwrap_or("").to_string(),
    ]
    .map(|c| gadget_model::printable(&c).into_owned())
    .into()
}

pub fn render_table(instances: &[InstanceInfo]) -> String {
    let rows: Vec<Vec<String>> = instances.iter().map(cells).collect();
    gadget_model::table::render(&COLUMNS, &rows)
}

pub fn list(args: &ListArgs, socket: &Path) -> anyhow::Result<()> {
    let Reply::Instances { instances } = api::call_one(socket, &Request::List)? else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&instances)?);
    } else {
        print!("{}", render_table(&instances));
    }
    Ok(())
}

pub fn delete(args: &DeleteArgs, socket: &Path) -> anyhow::Result<()> {
    let Reply::Deleted { ids } = api::call_one(
        socket,
        &Request::Delete {
            targets: args.targets.clone(),
        },
    )?
    else {
        anyhow::bail!("unexpected reply from the daemon");
    };
    for id in ids {
        println!("{id}");
    }
    Ok(())
}

/// Streams the instance's terminal view until the viewer is interrupted (the instance goes on).
pub fn attach(args: &AttachArgs, socket: &Path) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout();
    api::call(
        socket,
        &Request::Attach {
            target: args.target.clone(),
        },
        |reply| {
            if let Reply::Frame { text } = reply {
                let frame = if terminal {
                    format!("\x1b[H\x1b[2J{text}")
                } else {
                    text
                };
                return stdout
                    .write_all(frame.as_bytes())
                    .and_then(|()| stdout.flush())
                    .is_ok();
            }
            true
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_igs_columns() {
        let t = render_table(&[InstanceInfo {
            id: "fb20bc58666709934a61dffa3ad8a388".into(),
            name: "profileblockio".into(),
            tags: vec!["a".into(), "b".into()],
            gadget: "/g/profile_blockio".into(),
            status: "Running".into(),
            created_ms: 0,
        }]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID            NAME"), "{t}");
        assert!(
            lines[1].starts_with("fb20bc586667  profileblockio  a,b"),
            "{t}"
        );
        assert!(lines[1].ends_with("Running"), "{t}");
    }
}
