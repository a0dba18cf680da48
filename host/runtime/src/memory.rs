//! Giving back the memory an instance needed only to start.
//!
//! Starting an instance parses the kernel's BTF (several MiB of small allocations, more than
//! once: our CO-RE pass and aya each parse it) and may compile a guest; once it is attached all
//! of that is freed. glibc's malloc keeps freed memory in the arena it came from, and gives
//! each thread its own arena (up to 8 per core), so without this every instance thread kept
//! its start-up peak resident for good: ≈ 35 MiB each, most of a daemon's memory (see
//! BENCHMARKS.md, "Memory per instance"). Two measures:
//! - at most [`ARENAS`] arenas per process: instance threads share them (they allocate a
//!   little once per interval, so contention is negligible) and free memory is reused across
//!   instances instead of being stranded in one arena per thread;
//! - after an instance has started, [`release_free_heap`] returns every free page of every
//!   arena to the system (`malloc_trim`).
//!
//! Other allocators (musl) have neither knob; there these are no-ops.

use std::sync::Once;

/// Arenas glibc may create; its default is 8 per core.
pub const ARENAS: i32 = 2;

/// Caps glibc's arenas at [`ARENAS`], once per process; call it before starting threads that
/// allocate (threads already running keep the arena they have).
pub fn limit_arenas() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(target_env = "gnu")]
        // SAFETY: mallopt only changes glibc's own tuning parameter; it is thread-safe.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    });
}

/// Returns the free pages of every malloc arena to the system.
pub fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks glibc's own free lists (under their locks); it touches no
    // memory that is allocated.
    unsafe {
        libc::malloc_trim(0);
    }
}
