//! `gadget run`: run one gadget in the foreground.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use clap::Args;

use crate::daemon::{
    self,
    api::{Reply, Request, RunRequest},
};
use crate::ebpf::AttachMode;
use crate::image::{self, ImageConfig};
use crate::instance::{self, Ended, InstanceError, InstanceSpec, manifest};
use crate::operators::metrics::{MetricsName, MetricsOperator, MetricsRegistry, otlp, server};
use crate::operators::{Operator, printer::Printer};
use crate::wasm::GuestLimits;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The gadget: an image (profile_blockio:v0.46.0, localhost:5000/gadget/x:v1,
    /// …@sha256:…) or a gadget directory (gadgets/profile_blockio).
    #[arg(required_unless_present = "file")]
    pub reference: Option<String>,

    /// When to pull the image: always, missing (not in the local store) or never, as in IG.
    #[arg(long, default_value = "missing", value_parser = |s: &str| s.parse::<crate::image::PullPolicy>())]
    pub pull: crate::image::PullPolicy,

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
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Stop after this long (e.g. 10s, 2m); default: until Ctrl+C.
    #[arg(long, value_parser = parse_duration)]
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
    #[arg(long = "otel-metrics-otlp-interval", default_value = "10s", value_parser = parse_duration)]
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

/// Parses `500ms`, `1s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 1s, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        return Err(format!("{s:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
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
        }
    }
}

/// Reads a manifest from a file, stdin (`-`) or an http(s) URL, bounded in size.
fn read_manifest(source: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let limit = manifest::MAX_MANIFEST_BYTES as u64;
    let mut text = String::new();
    if source == "-" {
        std::io::stdin().take(limit + 1).read_to_string(&mut text)?;
    } else if source.starts_with("http://") || source.starts_with("https://") {
        let resp = ureq::get(source)
            .call()
            .map_err(|e| anyhow::anyhow!("fetching {source}: {e}"))?;
        resp.into_body()
            .into_reader()
            .take(limit + 1)
            .read_to_string(&mut text)?;
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
pub fn requests(args: &RunArgs, local: bool) -> anyhow::Result<Vec<RunRequest>> {
    let base = if local {
        args.request()
    } else {
        args.remote_request()
    };
    let Some(source) = &args.file else {
        return Ok(vec![base]);
    };
    let origin = if source == "-" {
        "<stdin>".to_string()
    } else {
        source.clone()
    };
    let text = read_manifest(source)?;
    let mut reqs = manifest::parse(&text, &origin, &base)?;
    if local {
        for r in &mut reqs {
            r.reference = daemon::absolute_reference(&r.reference);
        }
    }
    Ok(reqs)
}

/// `gadget run`: in the foreground, or handed to the daemon with --detach.
pub async fn execute(
    args: RunArgs,
    socket: &std::path::Path,
    images: &ImageConfig,
) -> anyhow::Result<()> {
    let mut requests = requests(&args, true)?;
    // `gadget run REF` pulled before parsing (see `prefetch`); a manifest's images are pulled here.
    let policy = match args.file {
        Some(_) => args.pull,
        None => args.pull.min_missing(),
    };
    for r in &mut requests {
        if image::ensure(images, &r.reference, policy).await?.is_some() {
            // The full name: the daemon may have another short-name prefix.
            r.reference = images.parse_ref(&r.reference)?.to_string();
        }
    }
    if args.detach {
        for req in requests {
            match daemon::api::call_one(socket, &Request::Run { spec: req })? {
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
    let (mut spec, names) = req.to_spec().map_err(|e| anyhow::anyhow!(e))?;
    spec.timeout = args.timeout;
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
            Box::new(Printer::stdout()),
            Box::new(MetricsOperator::new(registry, names)),
        ];
        let hooks = instance::Hooks {
            images,
            on_warning: Some(Box::new(|w: &str| eprintln!("warning: {w}"))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
