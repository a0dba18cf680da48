//! `gadget run`: run one gadget in the foreground.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use clap::Args;

use gadget_api::{Reply, Request, RunRequest};
use gadget_daemon as daemon;
use gadget_ebpf::AttachMode;
use gadget_image::{self as image, ImageConfig};
use gadget_operators::metrics::host::InstanceLabels;
use gadget_operators::metrics::{MetricsName, MetricsOperator, MetricsRegistry, otlp, server};
use gadget_operators::{Operator, printer::Printer};
use gadget_runtime::instance::{self, Ended, InstanceError, InstanceSpec};
use gadget_runtime::manifest;
use gadget_runtime::tracer::{EventFormat, EventOptions, EventSink, Loss};
use gadget_wasm::GuestLimits;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The gadget: an image (profile_blockio:v0.46.0, localhost:5000/gadget/x:v1,
    /// …@sha256:…) or a gadget directory (gadgets/profile_blockio).
    #[arg(required_unless_present = "file")]
    pub reference: Option<String>,

    /// When to pull the image: always, missing (not in the local store) or never, as in IG.
    #[arg(long, default_value = "missing", value_parser = |s: &str| s.parse::<gadget_image::PullPolicy>())]
    pub pull: gadget_image::PullPolicy,

    /// Run the instance specs of an IG manifest (a file, `-` for stdin, or an http(s) URL).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE|URL|-",
        conflicts_with = "reference"
    )]
    pub file: Option<String>,

    /// Hand the instance to the daemon (`gadget daemon`) and return its ID.
    #[arg(long)]
    pub detach: bool,

    /// Instance name (for --detach), usable instead of the ID in `gadget delete` and `attach`.
    #[arg(long)]
    pub name: Option<String>,

    /// Instance tag (for --detach); repeatable.
    #[arg(long = "tag")]
    pub tags: Vec<String>,

    /// How often to read the maps and refresh the output (IG's otel-metrics-print-interval).
    #[arg(long, default_value = "1s", value_parser = gadget_model::duration::parse_positive)]
    pub interval: Duration,

    /// Output: columns (IG's view), json (one object per line: a tracer's events; on a cluster,
    /// the combined data per refresh), jsonpretty or none (tracers' events).
    #[arg(short = 'o', long, default_value = "columns", value_parser = ["columns", "json", "jsonpretty", "none"])]
    pub output: String,

    /// Show only events matching these rules (IG's grammar): FIELD==VALUE, !=, >=, >, <=, <,
    /// ~ (regex), !~; comma-separated rules must all match. Tracers only.
    #[arg(long, value_name = "RULES")]
    pub filter: Option<String>,

    /// Columns to show (IG's --fields): FIELD,… or +FIELD / -FIELD to change the defaults.
    /// Tracers only.
    #[arg(long, value_name = "FIELDS")]
    pub fields: Option<String>,

    /// Stop after this long (e.g. 10s, 2m); default: until Ctrl+C.
    #[arg(long, value_parser = gadget_model::duration::parse_positive)]
    pub timeout: Option<Duration>,

    /// Annotations: <datasource>[.<field>]:<key>=<value>[,…] (repeatable), as in IG.
    #[arg(long = "annotate", value_name = "ANNOTATIONS")]
    pub annotate: Vec<String>,

    /// Export datasource <ds> under the metrics name (OpenTelemetry scope) <name>, as in IG;
    /// the datasource must be annotated metrics.collect=true. Repeatable.
    #[arg(long = "otel-metrics-name", value_name = "DATASOURCE:NAME", value_parser = |s: &str| s.parse::<MetricsName>().map_err(|e| e.to_string()))]
    pub otel_metrics_name: Vec<MetricsName>,

    /// Serve the Prometheus endpoint; on by default when a metrics name is given.
    #[arg(long = "otel-metrics-listen", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub otel_metrics_listen: Option<bool>,

    /// Address of the Prometheus endpoint (path /metrics).
    #[arg(long = "otel-metrics-listen-address", default_value = server::DEFAULT_ADDRESS)]
    pub otel_metrics_listen_address: String,

    /// Also push the metrics with OTLP/HTTP (protobuf) to this URL, e.g.
    /// http://otel-collector:4318/v1/metrics.
    #[arg(long = "otel-metrics-otlp-endpoint", value_name = "URL")]
    pub otel_metrics_otlp_endpoint: Option<String>,

    /// How often to push OTLP metrics.
    #[arg(long = "otel-metrics-otlp-interval", default_value = "10s", value_parser = gadget_model::duration::parse_positive)]
    pub otel_metrics_otlp_interval: Duration,

    /// Gadget parameter as KEY=VALUE (same as --KEY VALUE; repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub param: Vec<String>,

    /// Attach with this mode only (tp_btf, raw_tp, tracepoint) instead of the cheapest available.
    #[arg(long, env = "GADGET_ATTACH_MODE", value_parser = |s: &str| s.parse::<AttachMode>())]
    pub attach_mode: Option<AttachMode>,

    /// CPU budget of one guest call, in wasmtime fuel units.
    #[arg(long, default_value_t = GuestLimits::default().fuel_per_call)]
    pub guest_fuel: u64,

    /// Memory limit of the guest, in MiB.
    #[arg(long, default_value_t = (GuestLimits::default().memory_bytes >> 20) as u64)]
    pub guest_memory_mib: u64,

    /// Let the Wasm guest use a capability its gadget.yaml asks for: clock, network (repeatable).
    #[arg(long = "grant", value_name = "CAPABILITY")]
    pub grants: Vec<String>,

    /// Gadget parameters, filled from the gadget's own flags.
    #[arg(skip)]
    pub gadget_params: BTreeMap<String, String>,
}

impl RunArgs {
    /// The instance as the daemon stores it (also the base that manifests fill in).
    /// Local gadget directories become absolute: the daemon's working directory is not the user's.
    pub fn request(&self) -> RunRequest {
        let mut r = self.remote_request();
        r.reference = daemon::absolute_reference(&r.reference);
        r
    }

    /// The same for daemons on other machines: references are passed as typed.
    pub fn remote_request(&self) -> RunRequest {
        RunRequest {
            name: self.name.clone(),
            tags: self.tags.clone(),
            reference: self.reference.clone().unwrap_or_default(),
            params: self.gadget_params.clone(),
            annotations: self.annotate.clone(),
            metrics_names: self
                .otel_metrics_name
                .iter()
                .map(|n| format!("{}:{}", n.datasource, n.name))
                .collect(),
            interval_ms: self.interval.as_millis().max(1) as u64,
            attach_mode: self.attach_mode.map(|m| m.to_string()),
            guest_fuel: self.guest_fuel,
            guest_memory_mib: self.guest_memory_mib,
            grants: self.grants.clone(),
            verify_image: None,
        }
    }
}

/// Connecting to the server of a `-f http(s)://…` manifest.
const FETCH_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a manifest from a file, stdin (`-`) or an http(s) URL, bounded in size (and a URL in
/// time: `limits.fetch-timeout-seconds` for the whole fetch).
fn read_manifest(source: &str, limits: &image::Limits) -> anyhow::Result<String> {
    use std::io::Read;
    let limit = manifest::MAX_MANIFEST_BYTES as u64;
    let mut text = String::new();
    if source == "-" {
        std::io::stdin().take(limit + 1).read_to_string(&mut text)?;
    } else if source.starts_with("http://") || source.starts_with("https://") {
        let deadline = Duration::from_secs(limits.fetch_timeout_seconds);
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(FETCH_CONNECT_TIMEOUT))
            .timeout_global(Some(deadline))
            .build()
            .new_agent();
        let fail = |e: &dyn std::fmt::Display| {
            anyhow::anyhow!(
                "fetching {source}: {e} (the whole fetch has {} s: limits.fetch-timeout-seconds in the config file)",
                deadline.as_secs()
            )
        };
        let resp = agent.get(source).call().map_err(|e| fail(&e))?;
        resp.into_body()
            .into_reader()
            .take(limit + 1)
            .read_to_string(&mut text)
            .map_err(|e| fail(&e))?;
    } else {
        std::fs::File::open(source)
            .map_err(|e| anyhow::anyhow!("{source}: {e}"))?
            .take(limit + 1)
            .read_to_string(&mut text)
            .map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    }
    Ok(text)
}

/// The run requests of a command line: its manifest's documents, or the flags. `local`: for
/// this machine's daemon (gadget directories made absolute).
pub fn requests(
    args: &RunArgs,
    local: bool,
    limits: &image::Limits,
) -> anyhow::Result<Vec<RunRequest>> {
    let base = if local {
        args.request()
    } else {
        args.remote_request()
    };
    let Some(source) = &args.file else {
        check_names(&base)?;
        return Ok(vec![base]);
    };
    let origin = if source == "-" {
        "<stdin>".to_string()
    } else {
        source.clone()
    };
    let text = read_manifest(source, limits)?;
    let mut reqs = manifest::parse(&text, &origin, &base)?;
    for r in &reqs {
        check_names(r)?;
    }
    if local {
        for r in &mut reqs {
            r.reference = daemon::absolute_reference(&r.reference);
        }
    }
    Ok(reqs)
}

/// A client whose own settings turn verification off (`--verify-image=false`, the config
/// file) asks the daemon to run its requests unverified; the daemon decides
/// ([`RunRequest::verify_image`]).
pub fn request_verification(requests: &mut [RunRequest], verify_image: bool) {
    if !verify_image {
        for r in requests {
            r.verify_image = Some(false);
        }
    }
}

/// Names and tags are checked here too, so a bad one fails before any image is pulled (the
/// daemon checks again: other clients exist). The messages escape what they quote.
fn check_names(r: &RunRequest) -> anyhow::Result<()> {
    if let Some(name) = &r.name {
        gadget_api::check_instance_name(name)?;
    }
    for tag in &r.tags {
        gadget_api::check_tag(tag)?;
    }
    Ok(())
}

/// `gadget run`: in the foreground, or handed to the daemon with --detach.
pub async fn execute(
    args: RunArgs,
    socket: &std::path::Path,
    images: &ImageConfig,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.detach || (args.filter.is_none() && args.fields.is_none()),
        "--filter and --fields apply to a foreground run; the daemon does not take them yet (run without --detach)"
    );
    let mut requests = requests(&args, true, &images.limits)?;
    request_verification(&mut requests, images.verify.verify_image);
    // `gadget run REF` pulled before parsing (see `prefetch`); a manifest's images are pulled here.
    let policy = match args.file {
        Some(_) => args.pull,
        None => args.pull.min_missing(),
    };
    for r in &mut requests {
        if r.verify_image == Some(false) {
            if args.detach {
                // Only the daemon may let an image run unverified: it fetches the image itself
                // if it does (a refusal stores nothing).
                if !image::is_path(&r.reference) {
                    r.reference = images.parse_ref(&r.reference)?.to_string();
                }
                continue;
            }
            // In the foreground this process runs the image: only its own settings decide.
            anyhow::ensure!(
                !images.verify.verify_image,
                "{}: the manifest turns image signature verification off (operator.oci.verify-image), which only this command's own settings can do here: pass --verify-image=false (or sign the image: gadget image sign)",
                gadget_model::printable(&r.reference)
            );
        }
        if image::ensure(images, &r.reference, policy).await?.is_some() {
            // The full name: the daemon may have another short-name prefix.
            r.reference = images.parse_ref(&r.reference)?.to_string();
        }
    }
    if args.detach {
        for req in requests {
            match gadget_api::call_one(socket, &Request::Run { spec: req })? {
                Reply::Started { id } => println!("{id}"),
                other => anyhow::bail!("unexpected reply from the daemon: {other:?}"),
            }
        }
        return Ok(());
    }
    let [req] = requests.as_slice() else {
        anyhow::bail!(
            "the manifest has {} instance specs: run several with --detach (as in IG)",
            requests.len()
        );
    };
    let (mut spec, names) = instance::spec_from_request(req).map_err(|e| anyhow::anyhow!(e))?;
    spec.timeout = args.timeout;
    spec.events = EventOptions {
        format: match args.output.as_str() {
            "json" => EventFormat::Json,
            "jsonpretty" => EventFormat::JsonPretty,
            "none" => EventFormat::None,
            _ => EventFormat::Columns,
        },
        filter: args.filter.clone(),
        fields: args.fields.clone(),
        terminal_width: None,
    };
    foreground(spec, names, &args, images.clone()).await?;
    Ok(())
}

/// Runs in the foreground; Ctrl+C or SIGTERM stops the gadget (every program detached) and
/// returns normally.
async fn foreground(
    spec: InstanceSpec,
    names: Vec<MetricsName>,
    args: &RunArgs,
    images: ImageConfig,
) -> Result<Ended, InstanceError> {
    let registry = MetricsRegistry::default();
    if args.otel_metrics_listen.unwrap_or(!names.is_empty()) {
        server::serve(&args.otel_metrics_listen_address, registry.clone()).await?;
    }
    let pusher = args.otel_metrics_otlp_endpoint.clone().map(|endpoint| {
        let (tx, rx) = mpsc::channel::<()>();
        let (registry, interval) = (registry.clone(), args.otel_metrics_otlp_interval);
        (
            tx,
            std::thread::spawn(move || otlp::push_loop(endpoint, interval, registry, rx)),
        )
    });
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let worker = tokio::task::spawn_blocking(move || {
        let mut operators: Vec<Box<dyn Operator>> = vec![
            Box::new(Printer::new(
                Box::new(std::io::stdout()),
                std::io::IsTerminal::is_terminal(&std::io::stdout()),
            )),
            Box::new(MetricsOperator::new(registry.clone(), names)),
        ];
        let stats = registry.register_instance(InstanceLabels {
            image: spec.reference.clone(),
            ..Default::default()
        });
        let hooks = instance::Hooks {
            images,
            on_warning: Some(Box::new(|w: &str| eprintln!("warning: {w}"))),
            stats: Some(stats),
            event_sink: Some(Box::new(StdoutEvents::default())),
            ..Default::default()
        };
        let result = instance::run(&spec, &mut operators, &stop_rx, hooks);
        // One last push while the operators (and so the exported scopes) still exist.
        if let Some((tx, handle)) = pusher {
            drop(tx);
            let _ = handle.join();
        }
        result
    });
    tokio::pin!(worker);
    let signalled = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
    };
    tokio::select! {
        res = &mut worker => return join(res),
        () = signalled => {}
    }
    // The worker publishes one last snapshot, then drops the gadget (detaching everything).
    let _ = stop_tx.send(());
    join(worker.await)
}

fn join(
    res: Result<Result<Ended, InstanceError>, tokio::task::JoinError>,
) -> Result<Ended, InstanceError> {
    match res {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Makes the image `gadget run REF` names local before the command line is parsed: its
/// gadget.yaml declares the parameters that become flags.
pub async fn prefetch(target: &super::RunTarget) -> Result<(), image::ImageError> {
    image::ensure(&target.images, &target.reference, target.pull)
        .await
        .map(|_| ())
}

/// Tracers' events on stdout (one line each, written out per batch); losses and notices on
/// stderr.
struct StdoutEvents {
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Default for StdoutEvents {
    fn default() -> Self {
        StdoutEvents {
            out: std::io::BufWriter::with_capacity(64 << 10, std::io::stdout()),
        }
    }
}

impl EventSink for StdoutEvents {
    fn line(&mut self, _datasource: &str, line: &str) {
        use std::io::Write;
        // A closed stdout (a pager quit) is not an error worth stopping the gadget for.
        let _ = writeln!(self.out, "{line}");
    }

    fn lost(&mut self, datasource: &str, loss: &Loss) {
        self.flush();
        if loss.host_dropped > 0 {
            eprintln!(
                "warning: {datasource}: {} events lost: the host could not keep up with the event rate",
                loss.host_dropped
            );
        }
        if loss.ring_full > 0 {
            eprintln!(
                "warning: {datasource}: the ring buffer was full {} time(s): the eBPF program drops the events it cannot reserve room for (the kernel does not count them)",
                loss.ring_full
            );
        }
        if loss.refused > 0 {
            eprintln!(
                "warning: {datasource}: {} records refused (bad size or undecodable)",
                loss.refused
            );
        }
        if loss.guest_failed > 0 {
            eprintln!(
                "warning: {datasource}: {} events lost: the guest failed their batches",
                loss.guest_failed
            );
        }
    }

    fn notice(&mut self, datasource: &str, notice: &str) {
        eprintln!("notice: {datasource}: {notice}");
    }

    fn flush(&mut self) {
        use std::io::Write;
        let _ = self.out.flush();
    }
}
