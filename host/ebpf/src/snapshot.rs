//! Reading a map's entries as raw bytes, whatever its key and value types: the guest decodes.
//!
//! aya's typed maps need compile-time key/value types; datasources are only known at run time,
//! so this walks the map with BPF_MAP_GET_NEXT_KEY / BPF_MAP_LOOKUP_ELEM directly. The kernel
//! keeps the counts cumulative, so reads never race with increments (unlike IG's
//! lookup-and-delete) and nothing is lost between reads.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// The part of `union bpf_attr` the element commands use.
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next_key: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut MapElemAttr) -> io::Result<()> {
    // SAFETY: attr is a valid, initialised bpf_attr prefix that lives across the call; the
    // kernel reads only size_of::<MapElemAttr>() bytes and the pointers inside point at
    // buffers of the sizes the map was created with.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut MapElemAttr,
            std::mem::size_of::<MapElemAttr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// All entries of a map. `max_entries` bounds the walk, so a map mutated during the read (keys
/// deleted under us make GET_NEXT_KEY restart) cannot loop forever.
pub fn read_entries(
    fd: BorrowedFd<'_>,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut entries = Vec::new();
    let mut prev: Option<Vec<u8>> = None;
    let mut next = vec![0u8; key_size as usize];
    for _ in 0..=max_entries {
        let mut attr = MapElemAttr {
            map_fd: fd.as_raw_fd() as u32,
            key: prev.as_ref().map_or(0, |k| k.as_ptr() as u64),
            value_or_next_key: next.as_mut_ptr() as u64,
            ..Default::default()
        };
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            Err(e) => return Err(e),
        }
        let mut value = vec![0u8; value_size as usize];
        let mut attr = MapElemAttr {
            map_fd: fd.as_raw_fd() as u32,
            key: next.as_ptr() as u64,
            value_or_next_key: value.as_mut_ptr() as u64,
            ..Default::default()
        };
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(()) => entries.push((next.clone(), value)),
            // Deleted between the two calls: skip it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        prev = Some(next.clone());
    }
    Ok(entries)
}

/// CLOCK_MONOTONIC in ns, the clock bpf_ktime_get_ns uses.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}
