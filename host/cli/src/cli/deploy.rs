//! `kubectl gadget deploy` / `undeploy` (gadget-cluster's deploy module), with IG's flags.

use std::time::Duration;

use clap::Args;

use gadget_cluster::Cluster;
use gadget_cluster::deploy::{self, Deleted, DeployOptions, kind_of};

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The DaemonSet's container image (default: the manifest's, ghcr.io/gadget-host/gadget:latest).
    #[arg(long)]
    pub image: Option<String>,
    /// The image's pull policy: Always, IfNotPresent or Never.
    #[arg(long, default_value = "Always")]
    pub image_pull_policy: String,
    /// Only print the YAML of what would be applied (the token Secret with a new token); touch
    /// nothing.
    #[arg(long)]
    pub print_only: bool,
    /// Wait until the daemon pod is ready on every node (`--wait=false` to return at once).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "120s", value_parser = gadget_model::duration::parse_positive)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct UndeployArgs {
    /// Wait until every removed object is gone (`--wait=false` to return at once).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "60s", value_parser = gadget_model::duration::parse_positive)]
    pub timeout: Duration,
    /// Delete the namespace even if it was there before deploy (by default only a namespace
    /// deploy created is deleted).
    #[arg(long)]
    pub delete_namespace: bool,
}

fn options(args: &DeployArgs, namespace: &str) -> DeployOptions {
    DeployOptions {
        namespace: namespace.to_string(),
        image: args.image.clone(),
        pull_policy: Some(args.image_pull_policy.clone()),
    }
}

/// `--print-only`: needs no cluster, so no kubeconfig either.
pub fn print_only(args: &DeployArgs, namespace: &str) -> anyhow::Result<()> {
    let mut objects = deploy::objects(&options(args, namespace))?;
    // As deploy applies them on a cluster without the namespace.
    objects
        .iter_mut()
        .filter(|o| o["kind"] == "Namespace")
        .for_each(deploy::mark_created);
    // Where deploy creates it: before the DaemonSet whose pods mount it.
    let at = objects.len().saturating_sub(1);
    objects.insert(at, deploy::token_secret(namespace)?);
    print!("{}", deploy::to_yaml_stream(&objects));
    Ok(())
}

pub async fn deploy(cluster: &Cluster, args: &DeployArgs) -> anyhow::Result<()> {
    let mut objects = deploy::objects(&options(args, cluster.namespace()))?;
    let mut daemonset = None;
    for obj in &mut objects {
        let kind = kind_of(obj)?;
        if kind.kind == "Namespace" {
            // Marked when deploy creates it, and kept marked on every later apply (server-side
            // apply drops a label its manager stops sending); never on one that was there.
            let existing = cluster.get_object(&kind).await?;
            if existing.as_ref().is_none_or(deploy::created_by_deploy) {
                deploy::mark_created(obj);
            }
        }
        if kind.kind == "DaemonSet" {
            // The pods mount the token Secret: it must exist before they start.
            let secret = deploy::token_secret(cluster.namespace())?;
            let created = cluster.create_if_absent(&secret).await?;
            let secret_kind = kind_of(&secret)?;
            if created {
                println!("{secret_kind} created (a new random token)");
            } else {
                println!("{secret_kind} kept (it exists: the daemons' token is unchanged)");
            }
            daemonset = Some(kind.clone());
        }
        cluster.apply(obj).await?;
        println!(
            "{kind} applied (server-side, field manager {})",
            deploy::FIELD_MANAGER
        );
    }
    let Some(ds) = daemonset.filter(|_| args.wait) else {
        println!("the gadget daemons are being deployed");
        return Ok(());
    };
    println!(
        "waiting for the gadget pod(s) to be ready (at most {:?})…",
        args.timeout
    );
    cluster
        .wait_ready(&ds, args.timeout, |r| println!("{r}"))
        .await?;
    println!("gadget deployed: a ready daemon on every node");
    Ok(())
}

pub async fn undeploy(cluster: &Cluster, args: &UndeployArgs) -> anyhow::Result<()> {
    let ns = cluster.namespace();
    let mut objects = deploy::objects(&DeployOptions {
        namespace: ns.to_string(),
        ..Default::default()
    })?;
    objects.push(deploy::token_secret(ns)?);
    // The reverse of deploy's order: the DaemonSet (its pods) first, the namespace last.
    let mut kinds: Vec<deploy::Kind> = objects.iter().map(kind_of).collect::<Result<_, _>>()?;
    kinds.sort_by_key(|k| match k.kind.as_str() {
        "DaemonSet" => 0,
        "Namespace" => 2,
        _ => 1,
    });
    let mut deleted = Vec::new();
    for k in kinds {
        if k.kind == "Namespace" && !args.delete_namespace {
            match cluster.get_object(&k).await? {
                Some(ns) if !deploy::created_by_deploy(&ns) => {
                    println!(
                        "{k} kept: it was there before deploy (--delete-namespace deletes it)"
                    );
                    continue;
                }
                _ => {}
            }
        }
        match cluster.delete_object(&k).await? {
            Deleted::Deleted => println!("{k} deleted"),
            Deleted::Absent => println!("{k} not found (nothing to delete)"),
        }
        deleted.push(k);
    }
    if args.wait {
        println!("waiting for them to be gone (at most {:?})…", args.timeout);
        cluster.wait_gone(&deleted, args.timeout).await?;
    }
    println!("gadget undeployed");
    Ok(())
}
