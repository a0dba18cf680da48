//! A memory cgroup (v1, as on this machine kind's hybrid hierarchy) of a test's own: a hard cap
//! so a regression fails the test (the kernel kills the process inside) instead of the machine,
//! and the peak the process reached. `prlimit --as` cannot cap processes that start wasmtime
//! (it reserves several GiB of address space per instance), this can.

use std::path::PathBuf;
use std::process::{Command, Output};

const ROOT: &str = "/sys/fs/cgroup/memory";

pub struct MemCgroup {
    dir: PathBuf,
}

impl MemCgroup {
    pub fn new(tag: &str, limit_bytes: u64) -> MemCgroup {
        assert!(
            std::path::Path::new(ROOT)
                .join("memory.limit_in_bytes")
                .exists(),
            "{ROOT} (cgroup v1 memory controller) is needed to cap the test's memory"
        );
        let dir = PathBuf::from(ROOT).join(format!("gadget-test-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        std::fs::write(dir.join("memory.limit_in_bytes"), limit_bytes.to_string()).unwrap();
        MemCgroup { dir }
    }

    /// Runs `program args…` inside the cgroup to the end (a shell joins it, then execs).
    pub fn run(&self, program: &std::path::Path, args: &[&str]) -> Output {
        self.command(program, args).output().unwrap()
    }

    pub fn command(&self, program: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(&self.dir)
            .arg(program)
            .args(args);
        cmd
    }

    /// Moves a running process in: what it allocates from now on counts against the cap (what
    /// it already holds stays charged where it was).
    pub fn adopt(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The most memory the processes inside have used at once, in bytes.
    pub fn peak(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("memory.max_usage_in_bytes"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// How many times the cap was hit hard enough to kill.
    pub fn oom_kills(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("memory.oom_control"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        // Processes have exited by now; an empty cgroup can be removed.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
