//! The allocator's settings that hpo's binary makes at start-up. hpo allocates
//! through mimalloc (the binary's global allocator); its options are set through
//! mimalloc's C interface.

/// mimalloc's `mi_option_purge_delay` (the 16th entry of `mi_option_e` in mimalloc.h,
/// v2 and v3): how long freed memory waits before it is returned to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory for reuse instead of returning it to the OS 10 ms after it is
/// freed (mimalloc's default): a training step frees and allocates the same large
/// tensors every few milliseconds, and each purged page faulted back in zeroed,
/// about 8% of a CPU transformer step. A process's footprint stays at its peak.
pub fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores an option value; mimalloc reads the purge
    // delay each time it considers purging, and -1 is documented as "never purge".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
