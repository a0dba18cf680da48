//! A daemon under a memory limit lower than the instances asked of it: once the limit would be
//! crossed, new instances are refused with an error naming the limit, and the daemon and the
//! instances it already runs live on (no OOM kill taking every instance with it).

use crate::common::daemon::Daemon;
use crate::common::memcg::MemCgroup;
use crate::common::*;

/// The cgroup's limit: a few dozen profile_blockio instances fit (≈ 1.7 MiB each once started,
/// ≈ 20 MiB more while one starts), far fewer than the 400 the test asks for.
const LIMIT: u64 = 128 << 20;
const ASKED: usize = 400;

#[test]
#[ignore = "needs root"]
fn under_a_memory_limit_instances_are_refused_and_the_daemon_survives() {
    assert!(is_root(), "needs root: run through `make test`");
    let cg = MemCgroup::new("pressure", LIMIT);
    // Only memory limits the instances here, not the instance budget.
    let d = Daemon::in_memcg(cg.dir(), &["--budget", "daemon.max-instances=1000"]);
    let dev = LoopDevice::new("pressure");
    let dir = profile_blockio_dir();
    let mut started = Vec::new();
    let mut refusal = None;
    for i in 0..ASKED {
        let scope = format!("blockio:pressure-{i}");
        let out = d.cli(&[
            "run",
            dir.to_str().unwrap(),
            "--detach",
            "--disk",
            &dev.name,
            "--annotate=blockio:metrics.collect=true",
            "--otel-metrics-name",
            &scope,
        ]);
        if out.status.success() {
            started.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
        } else {
            refusal = Some(String::from_utf8_lossy(&out.stderr).to_string());
            break;
        }
    }
    eprintln!(
        "{} instances started under the {} MiB limit before a refusal",
        started.len(),
        LIMIT >> 20
    );
    assert_eq!(
        cg.oom_kills(),
        0,
        "the daemon was OOM-killed after {} instances; its log:\n{}",
        started.len(),
        d.log()
    );
    let refusal = refusal.unwrap_or_else(|| {
        panic!(
            "{ASKED} instances started under a {} MiB limit (peak {} MiB): none refused",
            LIMIT >> 20,
            cg.peak() >> 20
        )
    });
    assert!(
        refusal.contains("not enough memory for another instance")
            && refusal.contains(&cg.dir().display().to_string())
            && refusal.contains("limit of 128.0 MiB (memory.limit_in_bytes)"),
        "the refusal names the cgroup and its limit: {refusal}"
    );
    assert!(
        started.len() >= 5,
        "only {} instances fit in {} MiB: {refusal}",
        started.len(),
        LIMIT >> 20
    );

    // The daemon answers, every earlier instance is still running and still counting.
    let list: serde_json::Value = serde_json::from_str(&d.ok(&["list", "-o", "json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), started.len(), "the refused one is not listed");
    for i in list {
        assert_eq!(i["status"], "Running", "{i}");
    }
    dev.wait_quiet();
    let scopes = [
        "pressure-0".to_string(),
        format!("pressure-{}", started.len() - 1),
    ];
    let before: Vec<u64> = scopes.iter().map(|s| d.inf(s).unwrap_or(0)).collect();
    let kernel_before = dev.completed();
    dev.write_direct(300);
    let done = dev.completed() - kernel_before;
    for (scope, before) in scopes.iter().zip(before) {
        d.wait_inf(scope, before + done);
    }
    assert_eq!(cg.oom_kills(), 0);
}
