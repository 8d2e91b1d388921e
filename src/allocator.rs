//! The allocator loupe runs with, and the one option it changes.
//!
//! mimalloc, for ingest: it allocates and frees millions of small strings a second (field names
//! and values), and glibc's allocator spent ~15% of a loaded server in malloc, free and arena
//! consolidation (perf over `benches/benches/throughput.rs`).
//!
//! The benches that measure what `loupe serve` runs include this file by path
//! (`#[path = "../../src/allocator.rs"]`), so they run the same allocator with the same option.

/// The process's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_decommits`: its position in mimalloc's `mi_option_t` (mimalloc.h of the
/// v3 sources `libmimalloc-sys` builds, the same in v2), which the crate does not name.
const PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// What the environment variable that sets the option is called: an operator who sets it
/// keeps their value.
const PURGE_DECOMMITS_ENV: &str = "MIMALLOC_PURGE_DECOMMITS";

/// Sets mimalloc's options; call first thing in `main`, before any other thread starts.
///
/// Memory mimalloc has held free for a while (`purge_delay`, 1 s) is purged, by default
/// decommitted: `madvise(MADV_DONTNEED)`, so the next use of it faults and the kernel zeroes each
/// page again. The outliers question frees and reallocates its batches' memory all along a pass,
/// and that refaulting was 18% of its CPU time (`clear_page_erms` under `perf`): 10-15% slower than
/// with glibc's allocator (README, "What do the slow requests have in common?"). With
/// `purge_decommits` off a purge resets instead (`MADV_FREE`): the kernel still takes the pages
/// back when memory runs short, but memory reused before then is not faulted in or zeroed again.
/// Never purging (`purge_delay = -1`) was as fast, but would keep a large query's peak for the life
/// of the server; this keeps it only while nothing else wants it.
pub(crate) fn configure() {
    if std::env::var_os(PURGE_DECOMMITS_ENV).is_none() {
        // SAFETY: `mi_option_set` stores a value in mimalloc's table of options, which its
        // purge reads on each purge; any value is valid for this option (0 or 1), and it is
        // called before the process starts other threads, so nothing reads the table while
        // it is written.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(PURGE_DECOMMITS, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    /// `configure` turns `purge_decommits` off (mimalloc's default is 1), and `PURGE_DECOMMITS`
    /// is the option mimalloc reads from `MIMALLOC_PURGE_DECOMMITS`: this test binary, run again
    /// with that variable at 0, reads 0 at that number (a number naming another option would
    /// read that option's value: 1, 2, 1000, ...). Items are local to the test: the benches
    /// include this file, and their builds have no tests.
    #[test]
    fn configure_sets_the_option_the_environment_names() {
        #[allow(unsafe_code)]
        let purge_decommits = || {
            // SAFETY: reads an option's value; any number below mimalloc's last is valid.
            unsafe { libmimalloc_sys::mi_option_get(super::PURGE_DECOMMITS) }
        };
        const CHILD: &str = "LOUPE_ALLOCATOR_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            assert_eq!(
                purge_decommits(),
                0,
                "MIMALLOC_PURGE_DECOMMITS=0 read by number"
            );
            return;
        }
        if std::env::var_os(super::PURGE_DECOMMITS_ENV).is_some() {
            return; // An operator's value, which `configure` keeps.
        }
        assert_eq!(purge_decommits(), 1, "mimalloc's default");
        super::configure();
        assert_eq!(purge_decommits(), 0);

        let name = "allocator::tests::configure_sets_the_option_the_environment_names";
        let out = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args(["--exact", name, "--nocapture"])
            .env(CHILD, "1")
            .env(super::PURGE_DECOMMITS_ENV, "0")
            .output()
            .expect("run the test binary again");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the child: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
