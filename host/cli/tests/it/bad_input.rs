//! Bad input to the real binary: each case is a clear error naming what is wrong, and a non-zero
//! exit, never a panic or a hang.

use std::process::Command;

use crate::common::*;

fn fail(args: &[&str]) -> String {
    let out = run_to_end(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1 for {args:?}; stderr:\n{err}"
    );
    // A guest's own panic message (thread '<unnamed>') may appear; the host must not panic.
    let host_panic = err
        .lines()
        .any(|l| l.starts_with("thread '") && !l.starts_with("thread '<unnamed>'"));
    assert!(!host_panic, "{err}");
    err
}

#[test]
fn directory_without_gadget_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let err = fail(&["run", dir.path().to_str().unwrap()]);
    assert!(err.contains("has no gadget.yaml"), "{err}");
}

#[test]
fn directory_without_compiled_object() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gadget.yaml"), "name: x\n").unwrap();
    let err = fail(&["run", dir.path().to_str().unwrap()]);
    assert!(
        err.contains("program.bpf.o") && err.contains("make gadgets"),
        "{err}"
    );
}

#[test]
fn invalid_gadget_yaml_names_file_line_and_field() {
    let dir = gadget_dir(
        "name: x\ndatasources:\n  blockio:\n    fields:\n      latency:\n        annotations: nope\n",
    );
    let err = fail(&["run", dir.path().to_str().unwrap()]);
    let file = dir.path().join("gadget.yaml");
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert!(err.contains("line 6"), "{err}");
    assert!(err.contains("latency"), "{err}");
}

#[test]
fn unknown_parameter_lists_the_known_ones() {
    let dir = profile_blockio_dir();
    let out = run_to_end(&["run", dir.to_str().unwrap(), "--disc", "loop0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "usage errors exit 2 (clap): {err}"
    );
    assert!(err.contains("--disc") && err.contains("--disk"), "{err}");
}

#[test]
fn bad_parameter_values_and_annotations() {
    let dir = profile_blockio_dir();
    let d = dir.to_str().unwrap();
    let err = fail(&["run", d, "--disk", "no-such-disk"]);
    assert!(
        err.contains("--disk=no-such-disk") && err.contains("no block device"),
        "{err}"
    );
    let err = fail(&["run", d, "--annotate", "blocko:metrics.print=false"]);
    assert!(
        err.contains("unknown datasource \"blocko\"") && err.contains("blockio"),
        "{err}"
    );
    let err = fail(&["run", d, "--annotate", "blockio:metrics.print"]);
    assert!(
        err.contains("expected <datasource>[.<field>]:<key>=<value>"),
        "{err}"
    );
    let err = fail(&["run", d, "--annotate", "blockio:metrics.print=maybe"]);
    assert!(err.contains("metrics.print=maybe"), "{err}");
}

#[test]
fn without_privileges_it_says_so() {
    let dir = profile_blockio_dir();
    // setpriv drops to nobody with no capabilities, like an ordinary user.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(gadget_bin())
        .args(["run", dir.to_str().unwrap(), "--timeout", "1s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("needs root") && err.contains("CAP_BPF"),
        "{err}"
    );
}

#[test]
#[ignore = "needs root"]
fn verifier_rejection_shows_the_log_tail() {
    assert!(is_root(), "needs root: run through `make test`");
    let root = repo_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gadget.yaml"), "name: bad\n").unwrap();
    let st = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-c"])
        .arg(format!("-I{}", root.join("build/ebpf").display()))
        .arg(repo_root().join("host/tests/fixtures/verifier_reject.bpf.c"))
        .arg("-o")
        .arg(dir.path().join("program.bpf.o"))
        .status()
        .unwrap();
    assert!(
        st.success(),
        "clang failed (is build/ebpf/vmlinux.h there? make gadgets)"
    );
    let err = fail(&["run", dir.path().to_str().unwrap(), "--timeout", "1s"]);
    assert!(err.contains("tp_btf failed"), "{err}");
    assert!(
        err.contains("verifier rejected") && err.contains("last lines of the verifier log"),
        "{err}"
    );
    assert!(err.contains("bad_complete"), "names the program: {err}");
}

#[test]
#[ignore = "needs root"]
fn a_guest_that_always_traps_stops_the_gadget() {
    assert!(is_root(), "needs root: run through `make test`");
    let dir = misbehaving_gadget("trap");
    let err = fail(&[
        "run",
        dir.path().to_str().unwrap(),
        "--interval",
        "100ms",
        "--timeout",
        "20s",
    ]);
    assert!(err.contains("after 3 failed snapshots"), "{err}");
    assert!(err.contains("trapped in on-snapshot"), "{err}");
}

#[test]
#[ignore = "needs root"]
fn a_gadget_without_wasm_runs_the_default_guest() {
    assert!(is_root(), "needs root: run through `make test`");
    let dir = gadget_dir(&profile_yaml().replace("    per-device:", "    unused:"));
    let dev = LoopDevice::new("default-guest");
    let mut g = Running::start(&[
        "run",
        dir.path().to_str().unwrap(),
        "--disk",
        &dev.name,
        "--interval",
        "300ms",
    ]);
    g.wait_attached();
    dev.wait_quiet();
    let before = dev.completed();
    dev.write_direct(1000);
    let kernel = dev.completed() - before;
    let (status, out, err) = g.interrupt();
    assert!(status.success(), "{err}");
    assert!(err.contains("default guest"), "{err}");
    let h = parse_histograms(&out).pop().expect("a histogram");
    assert_eq!(h.title, "latency");
    assert_accounts(h.total(), kernel, "default guest's histogram");
}

#[test]
fn capabilities_are_declared_in_gadget_yaml_and_granted_by_the_user() {
    let dir = profile_blockio_dir();
    let d = dir.to_str().unwrap();
    let err = fail(&["run", d, "--grant", "network", "--timeout", "1s"]);
    assert!(
        err.contains("--grant network") && err.contains("does not ask for it"),
        "{err}"
    );
    let bad = gadget_dir(&format!("{}capabilities: [disk]\n", profile_yaml()));
    let err = fail(&["run", bad.path().to_str().unwrap(), "--timeout", "1s"]);
    assert!(
        err.contains("capabilities") && err.contains("\"disk\""),
        "{err}"
    );
    // Asked for and granted: runs (the default guest never uses the clock; the grant is valid).
    let asks = gadget_dir(&format!("{}capabilities: [clock]\n", profile_yaml()));
    let out = run_to_end(&[
        "run",
        asks.path().to_str().unwrap(),
        "--grant",
        "clock",
        "--timeout",
        "1s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_mistyped_gadget_directory_is_not_looked_up_as_an_image() {
    let missing = profile_blockio_dir().join("../no_such_gadget");
    let err = fail(&["run", missing.to_str().unwrap()]);
    assert!(err.contains("no such gadget directory"), "{err}");
    assert!(!err.contains("ghcr.io"), "{err}");
}
