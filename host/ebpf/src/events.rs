//! Reading a tracer's ring buffer (IG's `GADGET_TRACER_MAP`): records copied out in bounded
//! batches, drains that found the buffer full counted.
//!
//! IG (pkg/operators/ebpf/tracer.go) reads one record at a time and counts lost events only for
//! perf buffers (the kernel's `PERF_RECORD_LOST`); a ring buffer whose reservation fails drops the
//! event in the eBPF program, and the kernel counts nothing. This reader cannot recover that
//! number either, but it does not stay silent: a drain that found at least the ring's size
//! minus one record of data means the buffer was full while it waited, so reservations may
//! have failed; [`Drain::full`] says so and the caller reports it. Losses on the host's side
//! (a consumer too slow) are the caller's to count: this reader never blocks a producer and
//! never holds more than one batch.
//!
//! IG's perf-buffer fallback (for kernels without `bpf_ringbuf_*`, before 5.8) is not done:
//! every kernel this host supports has ring buffers, and a map declared as a perf event array is
//! refused with an error naming it (see [`crate::loader`]).

use std::os::fd::AsFd;
use std::time::Duration;

use aya::maps::{MapData, RingBuf};

/// Ring buffer records carry an 8-byte header and are padded to 8 bytes.
const RECORD_HEADER: u64 = 8;

/// One tracer's ring buffer, ready to read.
pub struct EventSource {
    /// The datasource (`GADGET_TRACER` name).
    pub datasource: String,
    pub map: String,
    ring: RingBuf<MapData>,
    /// The ring's size in bytes.
    size: u64,
    /// The event struct's size: records are cut to it or zero-padded (IG's rule).
    record_size: usize,
    /// Ring bytes drained since the ring was last found empty.
    since_empty: u64,
}

impl std::fmt::Debug for EventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSource")
            .field("datasource", &self.datasource)
            .field("map", &self.map)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// What one [`EventSource::drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drain {
    pub records: usize,
    /// Bytes the drained records took in the ring (headers and padding included).
    pub ring_bytes: u64,
    /// The ring was full (within one record) before this run of drains emptied it: the eBPF
    /// side may have dropped events it could not reserve room for, which the kernel does not
    /// count. Set on the drain that empties the ring.
    pub full: bool,
    /// The drain stopped at the batch bound with records left in the ring.
    pub more: bool,
}

impl EventSource {
    pub(crate) fn new(
        datasource: String,
        map: String,
        data: MapData,
        record_size: usize,
    ) -> Result<Self, String> {
        let size = data
            .info()
            .map(|i| u64::from(i.max_entries()))
            .map_err(|e| format!("map {map}: {e}"))?;
        let ring = RingBuf::try_from(aya::maps::Map::RingBuf(data))
            .map_err(|e| format!("map {map}: mapping the ring buffer: {e}"))?;
        Ok(EventSource {
            datasource,
            map,
            ring,
            size,
            record_size,
            since_empty: 0,
        })
    }

    /// The ring's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Waits until the ring has data or `timeout` passes; true when there is data. An
    /// interrupted wait is reported as no data (the caller loops).
    pub fn wait(&self, timeout: Duration) -> std::io::Result<bool> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let fd = self.ring.as_fd();
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        match poll(&mut fds, Some(&ts)) {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies up to `max` records into `out` (each exactly the event struct's size: cut, or
    /// zero-padded as IG does), consuming them from the ring.
    pub fn drain(&mut self, max: usize, out: &mut Vec<Vec<u8>>) -> Drain {
        let mut d = Drain::default();
        while d.records < max {
            let Some(item) = self.ring.next() else {
                break;
            };
            let mut rec = vec![0u8; self.record_size];
            let n = item.len().min(self.record_size);
            rec[..n].copy_from_slice(&item[..n]);
            d.ring_bytes += (item.len() as u64 + RECORD_HEADER).div_ceil(8) * 8;
            drop(item);
            out.push(rec);
            d.records += 1;
        }
        self.since_empty += d.ring_bytes;
        if d.records == max {
            d.more = true;
        } else {
            let one = (self.record_size as u64 + RECORD_HEADER).div_ceil(8) * 8;
            d.full = self.since_empty + one > self.size;
            self.since_empty = 0;
        }
        d
    }
}
