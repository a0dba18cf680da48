//! `gadget --cluster …`: the verb on every node's daemon (gadget-cluster), printed here.

use gadget_api::{InstanceInfo, RunRequest};
use gadget_cluster::{Cluster, ClusterError, Outcome};

/// Per-node failures and skipped pods go to stderr; any failure fails the command at the end.
fn report<T>(o: &Outcome<T>) -> Result<(), ClusterError> {
    for s in &o.skipped {
        eprintln!(
            "skipping node {}: daemon pod {} is {}",
            s.pod.node, s.pod.pod, s.phase
        );
    }
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
