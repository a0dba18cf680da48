//! CO-RE relocations of kind 12 (`BPF_CORE_TYPE_MATCHES`), resolved by the host before aya
//! loads the object: our own test object (ebpf/tests/core_type_matches.bpf.c) runs on this
//! kernel and records which branch of each `bpf_core_type_matches()` it took.
//!
//! Needs root and `make ebpf-test-objects` (`make test` provides both).

use aya::EbpfLoader;
use aya::maps::Array;
use aya::programs::RawTracePoint;
use gadget_object::btf::Btf;
use gadget_object::core_relo::{self, CoreError};

fn test_object() -> Vec<u8> {
    let p = crate::common::repo_root().join("build/ebpf-tests/core_type_matches.bpf.o");
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build it with `make ebpf-test-objects`",
            p.display()
        )
    })
}

/// The kernel's block_rq_issue tracepoint lost its `q` argument in 5.11.
fn kernel_has_one_arg_rq_issue() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().unwrap().parse().unwrap();
    let minor: u32 = parts.next().unwrap().parse().unwrap();
    (major, minor) >= (5, 11)
}

#[test]
fn aya_alone_refuses_the_object() {
    // Why the host resolves these itself: without it the whole object is refused.
    let Err(err) = EbpfLoader::new().load(&test_object()) else {
        panic!("aya loaded an object with kind-12 relocations");
    };
    let chain = format!("{err:?}");
    assert!(chain.contains("12"), "{chain}");
}

#[test]
#[ignore = "needs root"]
fn type_matches_take_libbpfs_branches_on_this_kernel() {
    assert!(
        crate::common::is_root(),
        "this test needs root: run it through `make test`"
    );
    let object = test_object();
    let (patched, resolved) =
        core_relo::resolve_type_matches(&object, "core_type_matches.bpf.o", Btf::from_kernel)
            .unwrap();
    assert_eq!(resolved.len(), 5, "{resolved:?}");
    let mut ebpf = EbpfLoader::new().load(&patched).unwrap();
    let prog: &mut RawTracePoint = ebpf
        .program_mut("core_type_matches")
        .unwrap()
        .try_into()
        .unwrap();
    prog.load().unwrap();
    prog.attach("sys_enter").unwrap();
    // Any syscall runs the probe; reading a file makes several.
    let _ = std::fs::read_to_string("/proc/self/stat").unwrap();
    let results: Array<_, u64> = Array::try_from(ebpf.map("results").unwrap()).unwrap();
    let got: Vec<u64> = (0..5).map(|i| results.get(&i, 0).unwrap()).collect();
    let new_proto = kernel_has_one_arg_rq_issue();
    let expected = vec![
        1,                             // task_struct with int pid, tgid: the kernel's has them
        2,                             // a member the kernel's task_struct lacks
        if new_proto { 1 } else { 2 }, // (void *, struct request *)
        if new_proto { 2 } else { 1 }, // (void *, struct request_queue *, struct request *)
        2,                             // cmd_flags signed here, unsigned (blk_opf_t) in the kernel
    ];
    assert_eq!(
        got, expected,
        "1 = matched branch ran, 2 = no-match branch ran"
    );
    // The host's own report agrees with what the program did.
    let reported: Vec<u64> = resolved
        .iter()
        .map(|r| if r.matches { 1 } else { 2 })
        .collect();
    assert_eq!(reported, expected, "{resolved:?}");
}

#[test]
fn an_unknown_relocation_kind_names_the_object() {
    let mut object = test_object();
    // Find the first kind-12 record in .BTF.ext and make it kind 13.
    let file = object::File::parse(object.as_slice()).unwrap();
    use object::{Object, ObjectSection};
    let (off, len) = file
        .section_by_name(".BTF.ext")
        .unwrap()
        .file_range()
        .unwrap();
    let (off, len) = (off as usize, len as usize);
    let ext = &object[off..off + len];
    let hdr_len = u32::from_le_bytes(ext[4..8].try_into().unwrap()) as usize;
    let relo_off = u32::from_le_bytes(ext[24..28].try_into().unwrap()) as usize;
    // rec_size, then the first section's name and count, then its first record.
    let first_kind = off + hdr_len + relo_off + 4 + 8 + 12;
    assert_eq!(
        u32::from_le_bytes(object[first_kind..first_kind + 4].try_into().unwrap()),
        12
    );
    object[first_kind..first_kind + 4].copy_from_slice(&13u32.to_le_bytes());
    let err =
        core_relo::resolve_type_matches(&object, "my-object.bpf.o", Btf::from_kernel).unwrap_err();
    assert!(
        matches!(err, CoreError::UnknownKind { kind: 13, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("my-object.bpf.o")
            && msg.contains("kind 13")
            && msg.contains("raw_tp/sys_enter"),
        "{msg}"
    );
}
