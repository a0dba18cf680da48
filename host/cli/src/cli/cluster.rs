//! `gadget --cluster …`: the verb on every node's daemon (gadget-cluster), printed here.

use std::collections::BTreeMap;
use std::time::Duration;

use gadget_api::{InstanceInfo, RunRequest, SnapshotFrame};
use gadget_cluster::{Cluster, ClusterError, DaemonPod, NodeError, Outcome};
use gadget_operators::combiner::{self, NodeFrame};
use gadget_operators::{Operator, printer::Printer};

/// Per-node failures, skipped pods and version skew go to stderr; any failure fails the
/// command at the end.
fn report<T>(o: &Outcome<T>) -> Result<(), ClusterError> {
    for s in &o.skipped {
        eprintln!(
            "skipping node {}: daemon pod {} is {}",
            s.pod.node, s.pod.pod, s.phase
        );
    }
    warn_skew(&o.skew);
    for (d, r) in &o.results {
        if let Err(e) = r {
            eprintln!("node {} (pod {}): {e}", d.node, d.pod);
        }
    }
    o.check()
}

pub async fn run(
    cluster: &Cluster,
    nodes: &[String],
    requests: Vec<RunRequest>,
) -> Result<(), ClusterError> {
    let o = gadget_cluster::run(cluster, nodes, requests).await?;
    for (d, r) in &o.results {
        if let Ok(id) = r {
            println!("{}\t{id}", d.node);
        }
    }
    report(&o)
}

pub async fn list(cluster: &Cluster, nodes: &[String], json: bool) -> Result<(), ClusterError> {
    let o = gadget_cluster::list(cluster, nodes).await?;
    let rows: Vec<(String, InstanceInfo)> = o
        .results
        .iter()
        .filter_map(|(d, r)| r.as_ref().ok().map(|i| (d, i)))
        .flat_map(|(d, instances)| instances.iter().map(|i| (d.node.clone(), i.clone())))
        .collect();
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(node, i)| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                v["node"] = serde_json::Value::String(node.clone());
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        use super::instances::{COLUMNS, cells};
        let header: Vec<&str> = ["NODE"].into_iter().chain(COLUMNS).collect();
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|(node, i)| std::iter::once(node.clone()).chain(cells(i)).collect())
            .collect();
        print!("{}", gadget_model::table::render(&header, &table));
    }
    report(&o)
}

pub async fn delete(
    cluster: &Cluster,
    nodes: &[String],
    targets: Vec<String>,
) -> Result<(), ClusterError> {
    let o = gadget_cluster::delete(cluster, nodes, targets).await?;
    for (d, r) in &o.results {
        if let Ok(ids) = r {
            ids.iter().for_each(|id| println!("{}\t{id}", d.node));
        }
    }
    report(&o)
}

fn warn_skew(skew: &[(DaemonPod, gadget_cluster::VersionSkew)]) {
    for (d, w) in skew {
        eprintln!("warning: node {} (pod {}): {w}", d.node, d.pod);
    }
}

/// What a foreground cluster view shows: a new temporary instance per node, or the detached
/// instance of that name (`attach`).
pub enum Source {
    Run(RunRequest),
    Attach(String),
}

/// How often the view asks each node, at most: well within the lease, whatever --interval is.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// `kubectl gadget run X` (without --detach) and `kubectl gadget attach X`: every selected
/// node's snapshots, combined as IG's combiner does, printed as IG prints them (or one JSON
/// line per refresh with `json`), until Ctrl+C, SIGTERM, `timeout` or no node is left. A run's
/// temporary instances are deleted at the end; their lease deletes them if this process dies.
pub async fn foreground(
    cluster: &Cluster,
    nodes: &[String],
    source: Source,
    interval: Duration,
    timeout: Option<Duration>,
    json: bool,
) -> Result<(), ClusterError> {
    let session = cluster.session(nodes).await?;
    for s in &session.skipped {
        eprintln!(
            "skipping node {}: daemon pod {} is {}",
            s.pod.node, s.pod.pod, s.phase
        );
    }
    warn_skew(&session.skew);
    for (d, e) in &session.refused {
        eprintln!("node {} (pod {}): {e}", d.node, d.pod);
    }
    let total = session.daemons.len() + session.refused.len();
    let mut failed = session.refused.len();
    let temporary = matches!(source, Source::Run(_));
    let mut live: Vec<(DaemonPod, String)> = match source {
        Source::Run(spec) => {
            let started = gadget_cluster::start_temporary(
                cluster,
                &session,
                spec,
                gadget_api::DEFAULT_LEASE_SECONDS,
            )
            .await;
            let mut live = Vec::new();
            for (d, r) in started {
                match r {
                    Ok(id) => live.push((d, id)),
                    Err(e) => {
                        failed += 1;
                        eprintln!("node {} (pod {}): {e}", d.node, d.pod);
                    }
                }
            }
            live
        }
        Source::Attach(target) => session
            .daemons
            .iter()
            .map(|d| (d.clone(), target.clone()))
            .collect(),
    };
    let started: Vec<(DaemonPod, String)> = live.clone();
    let mut frames: BTreeMap<String, SnapshotFrame> = BTreeMap::new();
    let mut printer = Printer::new(
        Box::new(std::io::stdout()),
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
    );
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut tick = tokio::time::interval(interval.min(RENEW_EVERY));
    // Registered once, before the first request: a signal that arrives while the nodes are
    // being asked is kept for the next wait, not lost.
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    let mut found_any = false;
    let mut unreachable: Vec<String> = Vec::new();
    while !live.is_empty() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = recv(&mut int) => break,
            _ = recv(&mut term) => break,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending::<()>().await } } => break,
        }
        let targets: Vec<(&DaemonPod, &str, u64)> = live
            .iter()
            .map(|(d, id)| (d, id.as_str(), frames.get(&d.node).map_or(0, |f| f.seq)))
            .collect();
        let results = gadget_cluster::fetch_all(cluster, &session, &targets).await;
        let mut keep = Vec::new();
        let mut fresh = false;
        for ((d, id), r) in live.drain(..).zip(results) {
            match r {
                Ok(f) if f.status.starts_with("Failed") => {
                    failed += 1;
                    eprintln!(
                        "node {} (pod {}): the gadget stopped: {}; the other nodes keep streaming",
                        d.node, d.pod, f.status
                    );
                }
                Ok(f) => {
                    found_any = true;
                    if let Some(frame) = f.frame {
                        frames.insert(d.node.clone(), frame);
                        fresh = true;
                    }
                    keep.push((d, id));
                }
                // Attach: a node without the instance is not a failure if another has it.
                Err(NodeError::Daemon {
                    code: gadget_api::ErrorCode::NotFound,
                    ..
                }) if !temporary => {}
                Err(e) => {
                    failed += 1;
                    frames.remove(&d.node);
                    // Named once: not asked again, not even to delete (its lease does that).
                    unreachable.push(d.pod.clone());
                    eprintln!(
                        "node {} (pod {}): {e}; the other nodes keep streaming",
                        d.node, d.pod
                    );
                }
            }
        }
        live = keep;
        if !temporary && !found_any && live.is_empty() {
            eprintln!("no node has an instance with that ID or name (see `kubectl gadget list`)");
            failed = total.max(1);
        }
        if fresh {
            show(&frames, &mut printer, json);
        }
    }
    if temporary {
        let reachable: Vec<(DaemonPod, String)> = started
            .into_iter()
            .filter(|(d, _)| !unreachable.contains(&d.pod))
            .collect();
        for (d, r) in gadget_cluster::delete_each(cluster, &session, &reachable).await {
            if let Err(e) = r {
                eprintln!(
                    "node {} (pod {}): deleting the temporary instance: {e} (its lease deletes it within {} s)",
                    d.node,
                    d.pod,
                    gadget_api::DEFAULT_LEASE_SECONDS
                );
            }
        }
    }
    if failed > 0 {
        return Err(ClusterError::SomeNodesFailed { failed, total });
    }
    Ok(())
}

/// The next signal of a stream, or never if it could not be registered.
async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// One refresh: the nodes' latest frames combined, then IG's view or a JSON line.
fn show(frames: &BTreeMap<String, SnapshotFrame>, printer: &mut Printer, json: bool) {
    let nodes: Vec<NodeFrame<'_>> = frames
        .iter()
        .map(|(node, f)| NodeFrame {
            node,
            datasources: &f.datasources,
            publications: &f.publications,
        })
        .collect();
    let combined = combiner::combine(&nodes);
    if json {
        let v: Vec<serde_json::Value> = combined
            .publications
            .iter()
            .map(|p| {
                let name = combined
                    .datasources
                    .get(p.datasource)
                    .map_or("", |d| d.name.as_str());
                serde_json::json!({
                    "datasource": name,
                    "nodes": frames.keys().collect::<Vec<_>>(),
                    "histograms": p.histograms,
                    "samples": p.samples,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    let shown = printer
        .start(&combined.datasources)
        .and_then(|()| printer.publish(&combined.publications));
    if let Err(e) = shown {
        eprintln!("error: {e}");
    }
}
