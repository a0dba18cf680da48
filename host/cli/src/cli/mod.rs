//! The `gadget` command line: one file per verb. Gadget parameters become flags of `run` at
//! parse time (read from the gadget's gadget.yaml), as in IG: `gadget run profile_blockio --disk loop0`.

pub mod cluster;
pub mod deploy;
pub mod image;
pub mod instances;
pub mod new;
pub mod run;

use std::ffi::OsString;

use clap::{
    Arg, ArgAction, ArgMatches, Args, Command, CommandFactory, FromArgMatches, Parser, Subcommand,
};

use gadget_image::ImageConfig;
use gadget_model::params;
use gadget_runtime::GadgetBundle;

#[derive(Debug, Parser)]
#[command(
    name = "gadget",
    version,
    about = "Run eBPF gadgets with WebAssembly guests (Inspektor Gadget compatible)"
)]
pub struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, global = true, env = "GADGET_LOG", default_value = "info")]
    pub log_level: String,
    /// Act on every node's daemon through the Kubernetes API server (kubeconfig as usual).
    #[arg(long, global = true)]
    pub cluster: bool,
    /// With --cluster: only these nodes (repeatable).
    #[arg(long = "node", global = true)]
    pub nodes: Vec<String>,
    /// With --cluster: the daemons' namespace (IG's --gadget-namespace).
    #[arg(short = 'n', long, visible_alias = "gadget-namespace", global = true, default_value = gadget_cluster::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// With --cluster: the kubeconfig file (default: KUBECONFIG, else ~/.kube/config, as kubectl).
    #[arg(long, global = true)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// With --cluster: the kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The daemon's local API socket.
    #[arg(long, global = true, env = "GADGET_SOCKET", default_value = gadget_api::DEFAULT_SOCKET)]
    pub socket: std::path::PathBuf,
    /// Config file for images and registries (default /etc/gadget/config.yaml, if present).
    #[arg(long, global = true, env = "GADGET_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// The local image store (an OCI image layout; default /var/lib/gadget/oci-store).
    #[arg(long, global = true, env = "GADGET_STORE")]
    pub store: Option<std::path::PathBuf>,
    /// Prefix for short image names (default ghcr.io/inspektor-gadget/gadget, as in IG).
    #[arg(long, global = true, env = "GADGET_REGISTRY_PREFIX")]
    pub registry_prefix: Option<String>,
    /// Registries (host[:port]) to reach over plain HTTP; loopback ones always are. Comma-separated.
    #[arg(
        long,
        global = true,
        env = "GADGET_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// Set a budget on outside input, KEY=VALUE (repeatable); see docs/budgets.md for the keys.
    #[arg(long = "budget", global = true, value_name = "KEY=VALUE")]
    pub budgets: Vec<String>,
    #[command(flatten)]
    pub verify: VerifyFlags,
    #[command(subcommand)]
    pub command: Verb,
}

// Parsed once per process: the size difference between verbs does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Run a gadget and show its output until Ctrl+C or --timeout (or --detach it to the daemon).
    Run(run::RunArgs),
    /// Host detached instances and the metrics endpoint; what the Kubernetes DaemonSet runs.
    Daemon(instances::DaemonArgs),
    /// List the daemon's instances.
    List(instances::ListArgs),
    /// Stop and remove instances.
    Delete(instances::DeleteArgs),
    /// Stream the live view of a detached instance (Ctrl+C leaves it running).
    Attach(instances::AttachArgs),
    /// Build, move and manage gadget images (OCI, in IG's format).
    Image(image::ImageArgs),
    /// Save credentials for a registry (checked against it first).
    Login(image::LoginArgs),
    /// Forget the credentials saved for a registry.
    Logout(image::LogoutArgs),
    /// Create a gadget folder from the template (eBPF C, gadget.yaml, a Rust guest).
    New(new::NewArgs),
    /// Deploy the daemon on every node of the cluster (kubectl gadget deploy).
    Deploy(deploy::DeployArgs),
    /// Remove what deploy created from the cluster (kubectl gadget undeploy).
    Undeploy(deploy::UndeployArgs),
}

/// Signature verification, IG's `operator.oci.*` flags (over the config file's keys of the
/// same names). Verification is on by default; the default keys are IG's and this host's.
#[derive(Debug, Clone, Default, Args)]
pub struct VerifyFlags {
    /// Verify the image's signature before running it (default true, as in IG).
    #[arg(long, global = true, env = "GADGET_VERIFY_IMAGE", num_args = 0..=1, default_missing_value = "true")]
    pub verify_image: Option<bool>,
    /// PEM public keys to verify with, replacing the defaults (IG's key and this host's);
    /// several per value (concatenated or comma-separated), repeatable.
    #[arg(long, global = true)]
    pub public_keys: Vec<String>,
    /// A PEM public key file to verify with (repeatable, or comma-separated in
    /// GADGET_PUBLIC_KEY_FILES); trusted in addition to --public-keys or the defaults.
    #[arg(
        long = "public-key-file",
        global = true,
        env = "GADGET_PUBLIC_KEY_FILES",
        value_delimiter = ','
    )]
    pub public_key_files: Vec<std::path::PathBuf>,
    /// notation: PEM certificates of the trust store (repeatable).
    #[arg(long, global = true)]
    pub notation_certificates: Vec<String>,
    /// notation: the trust policy document (JSON text).
    #[arg(long, global = true)]
    pub notation_policy_document: Option<String>,
    /// Only these images may run: `registry/repo:tag`, `registry/repo@sha256:…` or `prefix*` (comma-separated).
    #[arg(long, global = true, value_delimiter = ',')]
    pub allowed_gadgets: Vec<String>,
    /// This host's signing key (default /var/lib/gadget/signing-key.pem; made on first build).
    #[arg(long, global = true, env = "GADGET_SIGNING_KEY")]
    pub signing_key: Option<std::path::PathBuf>,
}

impl VerifyFlags {
    /// The flags `gadget run` needs before the full parse, read from argv directly.
    fn from_argv(argv: &[OsString]) -> VerifyFlags {
        VerifyFlags {
            verify_image: flag_value(argv, "verify-image", "GADGET_VERIFY_IMAGE")
                .and_then(|v| v.parse().ok()),
            public_keys: flag_values(argv, "public-keys"),
            public_key_files: flag_values(argv, "public-key-file")
                .into_iter()
                .chain(
                    std::env::var("GADGET_PUBLIC_KEY_FILES")
                        .ok()
                        .filter(|_| flag_values(argv, "public-key-file").is_empty())
                        .into_iter()
                        .flat_map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>()),
                )
                .filter(|f| !f.is_empty())
                .map(Into::into)
                .collect(),
            notation_certificates: flag_values(argv, "notation-certificates"),
            notation_policy_document: flag_value(argv, "notation-policy-document", ""),
            allowed_gadgets: flag_values(argv, "allowed-gadgets")
                .iter()
                .flat_map(|v| v.split(',').map(str::to_string))
                .collect(),
            signing_key: flag_value(argv, "signing-key", "GADGET_SIGNING_KEY").map(Into::into),
        }
    }

    fn apply(
        &self,
        v: &mut gadget_image::signatures::VerifyConfig,
    ) -> Result<(), gadget_image::ImageError> {
        if let Some(b) = self.verify_image {
            v.verify_image = b;
        }
        if !self.public_keys.is_empty() {
            v.public_keys = Some(self.public_keys.clone());
        }
        for f in &self.public_key_files {
            v.extra_public_keys
                .push(gadget_image::config::read_text(f, "--public-key-file")?);
        }
        if !self.notation_certificates.is_empty() {
            v.notation_certificates = self.notation_certificates.clone();
        }
        if let Some(p) = &self.notation_policy_document {
            v.notation_policy_document = Some(p.clone());
        }
        let allowed: Vec<String> = self
            .allowed_gadgets
            .iter()
            .filter(|a| !a.is_empty())
            .cloned()
            .collect();
        if !allowed.is_empty() {
            v.allowed_gadgets = allowed;
        }
        if let Some(k) = &self.signing_key {
            v.signing_key = k.clone();
        }
        Ok(())
    }
}

impl Cli {
    /// Image settings: the config file, then these flags (and their environment variables).
    pub fn images(&self) -> Result<ImageConfig, gadget_image::ImageError> {
        image_config(
            self.config.as_deref(),
            self.store.clone(),
            self.registry_prefix.clone(),
            &self.insecure_registries,
            &self.verify,
        )
    }
}

fn image_config(
    file: Option<&std::path::Path>,
    store: Option<std::path::PathBuf>,
    prefix: Option<String>,
    insecure: &[String],
    verify: &VerifyFlags,
) -> Result<ImageConfig, gadget_image::ImageError> {
    let mut cfg = ImageConfig::load(file)?;
    if let Some(s) = store {
        cfg.store = s;
    }
    if let Some(p) = prefix {
        cfg.registry_prefix = p;
    }
    cfg.insecure_registries
        .extend(insecure.iter().filter(|s| !s.is_empty()).cloned());
    cfg.progress = terminal_progress();
    verify.apply(&mut cfg.verify)?;
    Ok(cfg)
}

/// One updating line on stderr while blobs move, only when a person is watching.
fn terminal_progress() -> gadget_image::progress::ProgressSink {
    use gadget_image::progress::{ProgressSink, Transfer};
    use gadget_image::registry::human;
    use std::io::IsTerminal;
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
        return ProgressSink::default();
    }
    ProgressSink::new(|t| match t {
        Transfer::Moving {
            verb,
            digest,
            done,
            total,
        } => {
            let short = digest.get(7..19).unwrap_or(digest);
            let pct = (done * 100).checked_div(total).unwrap_or(100);
            eprint!(
                "\r{verb} {short}: {:>8} / {:<8} {pct:>3}%",
                human(done),
                human(total)
            );
        }
        Transfer::Finished => eprintln!(),
    })
}

/// Every `--name VALUE` or `--name=VALUE` in argv.
fn flag_values(argv: &[OsString], name: &str) -> Vec<String> {
    let flag = format!("--{name}");
    let mut found = Vec::new();
    let mut args = argv.iter().map(|a| a.to_string_lossy());
    while let Some(a) = args.next() {
        if a == flag {
            found.extend(args.next().map(|v| v.into_owned()));
        } else if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            found.push(v.to_string());
        }
    }
    found
}

/// What `gadget run` needs before the full parse: the gadget reference, the pull policy and
/// the image settings (the gadget's parameters become flags, so its image must be local first).
pub struct RunTarget {
    pub reference: String,
    pub pull: gadget_image::PullPolicy,
    pub images: ImageConfig,
    /// `--cluster`: each node's daemon pulls the image; the client only reads a local copy
    /// (for the gadget's flags) if it has one, and never pulls.
    pub cluster: bool,
}

/// The name kubectl looks for on PATH: `kubectl gadget X` runs `kubectl-gadget X`.
pub const PLUGIN_NAME: &str = "kubectl-gadget";

/// `kubectl-gadget X …` is `gadget --cluster X …` (kubectl's plugin convention: the binary's
/// file name says how it was called, as for a symlink). Any other name leaves argv as it is.
pub fn plugin_argv(mut argv: Vec<OsString>) -> Vec<OsString> {
    let called_as = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str());
    if called_as == Some(PLUGIN_NAME) {
        argv.insert(1.min(argv.len()), OsString::from("--cluster"));
    }
    argv
}

/// The last `--name VALUE` or `--name=VALUE` in argv, else the environment variable.
fn flag_value(argv: &[OsString], name: &str, env: &str) -> Option<String> {
    let flag = format!("--{name}");
    let mut found = None;
    let mut args = argv.iter().map(|a| a.to_string_lossy());
    while let Some(a) = args.next() {
        if a == flag {
            found = args.next().map(|v| v.into_owned());
        } else if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            found = Some(v.to_string());
        }
    }
    found.or_else(|| (!env.is_empty()).then(|| std::env::var(env).ok()).flatten())
}

/// argv read leniently, once, for what must be in force before the full parse ([`parse`]).
///
/// Why argv is read twice (this lenient pass, then [`parse`]), not once: `run`'s flags include
/// the gadget's own parameters, declared in its image's gadget.yaml. Before the full parse can
/// know them, the log filter must be set (pulling logs), the `--budget`s must be in force (they
/// bound that YAML) and the image must be local (pulled with the image settings). Both passes
/// read the same argv; nothing else reads it.
pub struct Early {
    argv: Vec<OsString>,
    /// `None` when even the lenient pass fails: the full parse reports why.
    matches: Option<ArgMatches>,
}

impl Early {
    pub fn new(argv: Vec<OsString>) -> Self {
        let matches = Cli::command()
            .ignore_errors(true)
            .try_get_matches_from(&argv)
            .ok();
        Early { argv, matches }
    }

    /// `--log-level` (or `GADGET_LOG`).
    pub fn log_level(&self) -> String {
        self.matches
            .as_ref()
            .and_then(|m| m.get_one::<String>("log_level").cloned())
            .unwrap_or_else(|| "info".to_string())
    }

    /// The process's budgets from `--budget` flags (the full parse already reads gadget.yaml for
    /// `run`'s flags, so the YAML budgets must be in force first).
    pub fn budgets(
        &self,
    ) -> Result<gadget_model::budgets::Budgets, gadget_model::budgets::BudgetError> {
        let overrides: Vec<String> = self
            .matches
            .as_ref()
            .and_then(|m| {
                m.get_many::<String>("budgets")
                    .map(|v| v.cloned().collect())
            })
            .unwrap_or_default();
        gadget_model::budgets::Budgets::default().with_overrides(&overrides)
    }

    /// `gadget run`'s target; reads the image config file, so call it once the budgets are in
    /// force.
    pub fn run_target(&self) -> Option<RunTarget> {
        let (m, argv) = (self.matches.as_ref()?, &self.argv);
        let run = m.subcommand_matches("run")?;
        // clap stops at the gadget's own flags (unknown until its image is local), so the image
        // settings are looked up in argv directly.
        let images = image_config(
            flag_value(argv, "config", "GADGET_CONFIG")
                .map(std::path::PathBuf::from)
                .as_deref(),
            flag_value(argv, "store", "GADGET_STORE").map(Into::into),
            flag_value(argv, "registry-prefix", "GADGET_REGISTRY_PREFIX"),
            &flag_value(argv, "insecure-registries", "GADGET_INSECURE_REGISTRIES")
                .map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default(),
            &VerifyFlags::from_argv(argv),
        )
        .ok()?;
        Some(RunTarget {
            reference: run.get_one::<String>("reference")?.clone(),
            pull: flag_value(argv, "pull", "")
                .and_then(|p| p.parse().ok())
                .unwrap_or_default(),
            images,
            cluster: m.get_flag("cluster"),
        })
    }
}

/// Parses argv fully, adding the gadget's own parameters (from `run`'s image, already local) as
/// flags of `run`.
pub fn parse(early: Early, run: Option<&RunTarget>) -> Result<Cli, clap::Error> {
    let argv = early.argv;
    let mut cmd = Cli::command();
    if argv
        .first()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        == Some(std::ffi::OsStr::new(PLUGIN_NAME))
    {
        // Usage and errors name the command as the user typed it.
        cmd = cmd.bin_name("kubectl gadget");
    }
    let declared = run
        .and_then(|t| GadgetBundle::open(&t.reference, &t.images).ok())
        .and_then(|b| {
            // An object that does not parse still gets gadget.yaml's flags; `run` then
            // reports the object's error.
            let elf = gadget_object::elf::ElfInfo::parse(&b.ebpf_object).unwrap_or_default();
            params::declared_with_object(&b.metadata, &elf).ok()
        })
        .unwrap_or_default();
    let mut keys = Vec::new();
    if !declared.is_empty() {
        let run = cmd
            .find_subcommand("run")
            .cloned()
            .unwrap_or_else(|| Command::new("run"));
        let taken: Vec<String> = run
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        let mut extra = Vec::new();
        for decl in &declared {
            let (key, spec) = (&decl.key, &decl.spec);
            if taken.iter().any(|t| t == key) {
                // A gadget cannot shadow a host flag; it stays reachable as --param KEY=VALUE.
                tracing::warn!(
                    "gadget parameter --{key} clashes with a gadget host flag; use --param {key}=VALUE"
                );
                continue;
            }
            let mut arg = Arg::new(key.clone())
                .long(key.clone())
                .help(format!(
                    "[gadget] {} ({})",
                    spec.description,
                    decl.type_name()
                ))
                .action(ArgAction::Set)
                .help_heading("Gadget parameters");
            if decl.is_bool() {
                arg = arg
                    .num_args(0..=1)
                    .default_missing_value("true")
                    .require_equals(false);
            } else {
                // IG's signed params take negative values (`--ifindex -1`).
                arg = arg.allow_negative_numbers(true);
            }
            if !spec.default_value.is_empty() {
                arg = arg.default_value(spec.default_value.clone());
            }
            extra.push(arg);
            keys.push(key.clone());
        }
        cmd = cmd.mut_subcommand("run", |c| c.args(extra));
    }
    let matches = cmd.try_get_matches_from(argv)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let (Verb::Run(args), Some(sub)) = (&mut cli.command, matches.subcommand_matches("run")) {
        collect_params(sub, &keys, args)?;
    }
    Ok(cli)
}

fn collect_params(
    sub: &ArgMatches,
    keys: &[String],
    args: &mut run::RunArgs,
) -> Result<(), clap::Error> {
    for key in keys {
        if let Some(v) = sub.get_one::<String>(key) {
            args.gadget_params.insert(key.clone(), v.clone());
        }
    }
    for kv in &args.param {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("--param {kv:?}: expected KEY=VALUE\n"),
            )
        })?;
        args.gadget_params.insert(k.to_string(), v.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn parse_argv(argv: Vec<OsString>) -> Result<Cli, clap::Error> {
        let early = Early::new(argv);
        let run = early.run_target();
        parse(early, run.as_ref())
    }

    fn parse_line(s: &str) -> Result<Cli, clap::Error> {
        parse_argv(argv(s))
    }

    #[test]
    fn the_plugin_name_means_cluster() {
        let plugin = plugin_argv(argv("/usr/local/bin/kubectl-gadget list -n ig"));
        assert_eq!(
            plugin,
            argv("/usr/local/bin/kubectl-gadget --cluster list -n ig")
        );
        let cli = parse_argv(plugin).unwrap();
        assert!(cli.cluster);
        assert_eq!(cli.namespace, "ig");
        // `gadget` itself is unchanged, and so is a name that only contains the plugin's.
        assert_eq!(plugin_argv(argv("gadget list")), argv("gadget list"));
        assert_eq!(
            plugin_argv(argv("/x/kubectl-gadget-old list")),
            argv("/x/kubectl-gadget-old list")
        );
        assert!(!parse_argv(argv("gadget list")).unwrap().cluster);
        let cli = parse_argv(argv(
            "kubectl-gadget --cluster list --kubeconfig /k --context c --gadget-namespace g",
        ))
        .unwrap();
        assert_eq!(cli.kubeconfig.as_deref(), Some(std::path::Path::new("/k")));
        assert_eq!(cli.context.as_deref(), Some("c"));
        assert_eq!(cli.namespace, "g");
    }

    #[test]
    fn gadget_params_become_flags_anywhere_on_the_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gadget.yaml"),
            "name: t\nparams:\n  ebpf:\n    targ_dev: {key: disk, typeHint: device}\n  wasm:\n    per-device: {typeHint: bool}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("program.bpf.o"), b"").unwrap();
        let d = dir.path().display();
        let cli = parse_line(&format!(
            "gadget run --timeout 2s {d} --disk loop0 --per-device --interval 500ms"
        ))
        .unwrap();
        let Verb::Run(r) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            r.gadget_params.get("disk").map(String::as_str),
            Some("loop0")
        );
        assert_eq!(
            r.gadget_params.get("per-device").map(String::as_str),
            Some("true")
        );
        assert_eq!(r.interval, std::time::Duration::from_millis(500));
        assert!(parse_line(&format!("gadget run {d} --disc loop0")).is_err());
    }
}
