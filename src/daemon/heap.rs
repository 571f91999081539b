//! glibc malloc settings for a process that runs for months with large short-lived buffers.
//!
//! Each tick the daemon builds a few MiB at once and frees them: the state file, `/status`, and
//! each scrape's `/metrics` text (1,000 pools: ~44,000 series). glibc serves blocks above
//! `M_MMAP_THRESHOLD` (128 KiB) with `mmap` and unmaps them on free, but after such a free it
//! raises the threshold, up to 32 MiB (mallopt(3), "M_MMAP_THRESHOLD"); from then on those buffers
//! come from the heap arenas, fragment them, and the resident set creeps up for hours. Setting
//! the threshold turns that dynamic adjustment off; capping the arenas at the runtime's two
//! threads (mallopt(3), "M_ARENA_MAX") stops each thread keeping its own fragmented copy.
//! `benches/soak.rs` measures the effect.

/// Applies the settings above; call once, before the tokio runtime starts its threads.
pub fn bound_heap_growth() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
