//! `gadget`: parse the command line, run the verb, turn errors into a message and exit code.

// The one crate that prints (the workspace denies it elsewhere, Cargo.toml): the CLI's output and
// its error messages are its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

mod cli;

use cli::Verb;

fn main() -> ExitCode {
    // argv is read here only; see `cli::Early` for why it is parsed in two passes.
    let early = cli::Early::new(cli::plugin_argv(std::env::args_os().collect()));
    let mut level = early.log_level();
    // kube logs each failed request at error level; the cluster client reports it once itself.
    if !level.contains("kube") {
        level.push_str(",kube_client=off");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
    match early.budgets() {
        Ok(b) => b.install(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `gadget run IMAGE`: the image's gadget.yaml declares flags, so it must be local first.
    let target = early.run_target();
    if let Some(target) = target.as_ref().filter(|t| !t.cluster)
        && let Err(e) = runtime.block_on(cli::run::prefetch(target))
    {
        eprintln!("error: {}", gadget_model::error_chain(&e));
        return ExitCode::FAILURE;
    }
    let cli = match cli::parse(early, target.as_ref()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let images = match cli.images() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let socket = cli.socket.clone();
    let result: anyhow::Result<()> = runtime.block_on(async move {
        // Prints what would be applied: needs no cluster, not even a kubeconfig.
        if let Verb::Deploy(args) = &cli.command
            && args.print_only
        {
            return cli::deploy::print_only(args, &cli.namespace);
        }
        if cli.cluster {
            return on_cluster(cli).await;
        }
        anyhow::ensure!(
            cli.nodes.is_empty(),
            "--node selects nodes of a cluster: add --cluster"
        );
        match cli.command {
            Verb::Run(args) => cli::run::execute(args, &socket, &images).await,
            Verb::Image(args) => cli::image::execute(args, &images).await,
            Verb::Login(args) => cli::image::login(args, &images).await,
            Verb::Logout(args) => cli::image::logout(args, &images),
            Verb::New(args) => cli::new::execute(args),
            Verb::Daemon(args) => gadget_daemon::run(gadget_daemon::DaemonConfig {
                connections: args.connection_limits(),
                state_dir: args.state_dir,
                socket,
                metrics_address: args
                    .otel_metrics_listen
                    .then_some(args.otel_metrics_listen_address),
                cluster_api: args.api_listen_address.zip(args.api_token_file),
                allow_unverified_requests: args.allow_unverified_requests,
                images,
            })
            .await
            .map_err(anyhow::Error::from),
            Verb::Deploy(_) | Verb::Undeploy(_) => anyhow::bail!(
                "deploy and undeploy act on a Kubernetes cluster: kubectl gadget deploy (or gadget --cluster deploy)"
            ),
            Verb::List(args) => cli::instances::list(&args, &socket),
            Verb::Delete(args) => cli::instances::delete(&args, &socket),
            Verb::Attach(args) => {
                // Ctrl+C ends the viewer only; the instance runs on in the daemon.
                let viewer =
                    tokio::task::spawn_blocking(move || cli::instances::attach(&args, &socket));
                tokio::select! {
                    r = viewer => r.map_err(anyhow::Error::from).and_then(|r| r),
                    _ = tokio::signal::ctrl_c() => Ok(()),
                }
            }
        }
    });
    // A viewer blocked on the daemon's socket must not hold the exit up.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--cluster`: the verb on every node's daemon, through the Kubernetes API server.
async fn on_cluster(cli: cli::Cli) -> anyhow::Result<()> {
    use gadget_cluster as cluster;
    let c = cluster::Cluster::connect(
        &cli.namespace,
        cli.kubeconfig.as_deref(),
        cli.context.as_deref(),
    )
    .await?;
    // Only `run` needs them: a bad config file fails only that.
    let images = cli.images();
    match cli.command {
        Verb::Run(args) => {
            let images = images?;
            let mut requests = cli::run::requests(&args, false, &images.limits)?;
            // Each node's daemon applies its own policy; turning it off is only a request.
            cli::run::request_verification(&mut requests, images.verify.verify_image);
            if args.detach {
                cli::cluster::run(&c, &cli.nodes, requests).await?
            } else {
                let [spec] = <[_; 1]>::try_from(requests).map_err(|r| {
                    anyhow::anyhow!(
                        "the manifest has {} instance specs: run several with --detach (as in IG)",
                        r.len()
                    )
                })?;
                cli::cluster::foreground(
                    &c,
                    &cli.nodes,
                    cli::cluster::Source::Run(spec),
                    args.interval,
                    args.timeout,
                    args.output == "json",
                )
                .await?
            }
        }
        Verb::List(args) => cli::cluster::list(&c, &cli.nodes, args.output == "json").await?,
        Verb::Delete(args) => cli::cluster::delete(&c, &cli.nodes, args.targets).await?,
        Verb::Attach(args) => {
            cli::cluster::foreground(
                &c,
                &cli.nodes,
                cli::cluster::Source::Attach(args.target),
                std::time::Duration::from_secs(1),
                None,
                false,
            )
            .await?
        }
        Verb::Deploy(args) => cli::deploy::deploy(&c, &args).await?,
        Verb::Undeploy(args) => cli::deploy::undeploy(&c, &args).await?,
        Verb::Daemon(_) | Verb::Image(_) | Verb::Login(_) | Verb::Logout(_) | Verb::New(_) => {
            anyhow::bail!(
                "daemon, image, login and logout work on one node: use kubectl exec into its gadget pod"
            )
        }
    }
    Ok(())
}
