//! The `gadget` command line: one file per verb. Gadget parameters become flags of `run` at
//! parse time (read from the gadget's gadget.yaml), as in IG: `gadget run profile_blockio --disk loop0`.

pub mod instances;
pub mod run;

use std::ffi::OsString;

use clap::{
    Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches, Parser, Subcommand,
};

use crate::gadget::{GadgetBundle, params};

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
    /// With --cluster: the daemons' namespace.
    #[arg(long, global = true, default_value = crate::cluster::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// With --cluster: the kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The daemon's local API socket.
    #[arg(long, global = true, env = "GADGET_SOCKET", default_value = crate::daemon::api::DEFAULT_SOCKET)]
    pub socket: std::path::PathBuf,
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
}

/// Parses `argv`, adding the gadget's own parameters as flags of `run`.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, clap::Error> {
    let mut cmd = Cli::command();
    let declared = run_reference(&argv)
        .and_then(|r| GadgetBundle::open(&r).ok())
        .map(|b| {
            params::declared(&b.metadata)
                .into_iter()
                .map(|(k, spec)| (k.to_string(), spec.clone()))
                .collect::<Vec<_>>()
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
        for (key, spec) in &declared {
            if taken.iter().any(|t| t == key) {
                // A gadget cannot shadow a host flag; it stays reachable as --param KEY=VALUE.
                tracing::warn!(
                    "gadget parameter --{key} clashes with a gadget host flag; use --param {key}=VALUE"
                );
                continue;
            }
            let mut arg = Arg::new(key.clone())
                .long(key.clone())
                .help(format!("[gadget] {}", spec.description))
                .action(ArgAction::Set)
                .help_heading("Gadget parameters");
            if spec.type_hint == "bool" {
                arg = arg
                    .num_args(0..=1)
                    .default_missing_value("true")
                    .require_equals(false);
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

/// The gadget reference given to `run`, found before full parsing (it decides which flags exist).
fn run_reference(argv: &[OsString]) -> Option<String> {
    let m = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(argv)
        .ok()?;
    m.subcommand_matches("run")?
        .get_one::<String>("reference")
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
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
        let cli = parse(argv(&format!(
            "gadget run --timeout 2s {d} --disk loop0 --per-device --interval 500ms"
        )))
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
        assert!(parse(argv(&format!("gadget run {d} --disc loop0"))).is_err());
    }
}
