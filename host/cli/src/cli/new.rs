//! `gadget new NAME`: a gadget folder from the template in `templates/gadget/` (compiled into
//! the binary): program.bpf.c, gadget.yaml, build.yaml, a guest crate on the SDK, a README.
//! It builds with `gadget image build` and runs unchanged. `gadget new --tracer NAME` takes
//! `templates/tracer/` instead: an event tracer (GADGET_TRACER, ring buffer) whose guest gets
//! the events in batches.

use std::path::{Path, PathBuf};

use clap::Args;

const TEMPLATE: &[(&str, &str)] = &[
    (
        "program.bpf.c",
        include_str!("../../../../templates/gadget/program.bpf.c"),
    ),
    (
        "gadget.yaml",
        include_str!("../../../../templates/gadget/gadget.yaml"),
    ),
    (
        "build.yaml",
        include_str!("../../../../templates/gadget/build.yaml"),
    ),
    (
        "README.md",
        include_str!("../../../../templates/gadget/README.md"),
    ),
    (
        "guest/Cargo.toml",
        include_str!("../../../../templates/gadget/guest/Cargo.toml"),
    ),
    (
        "guest/src/lib.rs",
        include_str!("../../../../templates/gadget/guest/src/lib.rs"),
    ),
];

const TRACER_TEMPLATE: &[(&str, &str)] = &[
    (
        "program.bpf.c",
        include_str!("../../../../templates/tracer/program.bpf.c"),
    ),
    (
        "gadget.yaml",
        include_str!("../../../../templates/tracer/gadget.yaml"),
    ),
    (
        "build.yaml",
        include_str!("../../../../templates/tracer/build.yaml"),
    ),
    (
        "README.md",
        include_str!("../../../../templates/tracer/README.md"),
    ),
    (
        "guest/Cargo.toml",
        include_str!("../../../../templates/tracer/guest/Cargo.toml"),
    ),
    (
        "guest/src/lib.rs",
        include_str!("../../../../templates/tracer/guest/src/lib.rs"),
    ),
];

/// Where this binary's repository keeps the SDK, if it is still there (a source build).
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-sdk");

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The gadget's name: lowercase letters, digits and '_' (it names the datasource too).
    pub name: String,
    /// Create the folder in this directory.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The guest SDK (the repository's guest-sdk folder); default: the one this binary was built from.
    #[arg(long, env = "GADGET_SDK")]
    pub sdk: Option<PathBuf>,
    /// An event tracer (one row per event, from a ring buffer) instead of a histogram gadget.
    #[arg(long)]
    pub tracer: bool,
}

pub fn execute(args: NewArgs) -> anyhow::Result<()> {
    validate_name(&args.name)?;
    let sdk = match args.sdk {
        Some(s) => s,
        None => PathBuf::from(BUILT_SDK),
    };
    let sdk = sdk.canonicalize().map_err(|e| {
        anyhow::anyhow!(
            "the guest SDK is not at {} ({e}); give its folder with --sdk (the guest-sdk folder of the gadget host's repository)",
            sdk.display()
        )
    })?;
    anyhow::ensure!(
        sdk.join("Cargo.toml").is_file(),
        "{} is not the guest SDK (no Cargo.toml)",
        sdk.display()
    );
    let root = args.dir.join(&args.name);
    anyhow::ensure!(
        !root.exists(),
        "{} already exists; choose another name or --dir",
        root.display()
    );
    let template = if args.tracer {
        TRACER_TEMPLATE
    } else {
        TEMPLATE
    };
    write_template(template, &root, &args.name, &sdk)?;
    println!("created {}", root.display());
    println!(
        "next: gadget image build {} -t {}:dev && gadget run {}:dev",
        root.display(),
        args.name,
        args.name
    );
    Ok(())
}

fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("___");
    anyhow::ensure!(
        ok,
        "{name:?} is not a gadget name: use lowercase letters, digits and '_' (starting with a letter, no \"___\"), e.g. my_gadget"
    );
    Ok(())
}

fn write_template(
    template: &[(&str, &str)],
    root: &Path,
    name: &str,
    sdk: &Path,
) -> anyhow::Result<()> {
    for (rel, text) in template {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        }
        let text = text
            .replace("{{name}}", name)
            .replace("{{sdk}}", &sdk.display().to_string());
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_placeholders() {
        for bad in ["", "Bad", "1x", "a-b", "a___b", "a b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        validate_name("my_gadget2").unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_template(
            TEMPLATE,
            &dir.path().join("g"),
            "my_gadget",
            Path::new("/sdk"),
        )
        .unwrap();
        let yaml = std::fs::read_to_string(dir.path().join("g/gadget.yaml")).unwrap();
        assert!(yaml.contains("name: my_gadget") && !yaml.contains("{{"));
        let cargo = std::fs::read_to_string(dir.path().join("g/guest/Cargo.toml")).unwrap();
        assert!(cargo.contains("path = \"/sdk\""));
        let c = std::fs::read_to_string(dir.path().join("g/program.bpf.c")).unwrap();
        assert!(c.contains("GADGET_MAPITER(my_gadget, hists)"));
    }

    #[test]
    fn tracer_template() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        write_template(TRACER_TEMPLATE, &root, "my_tracer", Path::new("/sdk")).unwrap();
        for (rel, _) in TRACER_TEMPLATE {
            let text = std::fs::read_to_string(root.join(rel)).unwrap();
            assert!(!text.contains("{{"), "{rel} keeps a placeholder");
        }
        let c = std::fs::read_to_string(root.join("program.bpf.c")).unwrap();
        assert!(c.contains("GADGET_TRACER(my_tracer, events, event)"));
        let guest = std::fs::read_to_string(root.join("guest/src/lib.rs")).unwrap();
        assert!(guest.contains("const DATASOURCE: &str = \"my_tracer\""));
    }
}
