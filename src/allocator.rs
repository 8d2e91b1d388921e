//! The allocator loupe runs with, and the settings it changes: mimalloc's purge, and for the
//! commands that run once (all but `loupe serve`) transparent huge pages, off.
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

/// What the environment variable that sets mimalloc's `allow_thp` is called: an operator who
/// sets it (to 1, to keep huge pages) has mimalloc's behaviour, not ours.
const ALLOW_THP_ENV: &str = "MIMALLOC_ALLOW_THP";

/// For a command that runs once and exits (`loupe outliers`, `loupe sql`, ...; not `loupe
/// serve`): turns transparent huge pages off for the process (`prctl(PR_SET_THP_DISABLE)`), as
/// `MIMALLOC_ALLOW_THP=0` would, unless that variable is set (an operator's choice is kept).
/// The option itself is read when mimalloc starts, before `main`, and mimalloc has asked for
/// huge pages (`MADV_HUGEPAGE`) on the memory it reserved by then; the process-wide flag
/// overrides that.
///
/// With huge pages, each first touch of fresh memory is a 2 MiB page the kernel zeroes whole,
/// however little of it the process uses, and a command that runs once touches all its memory
/// for the first time: `loupe outliers` over 10M events spent 15% of its CPU time in the
/// kernel's `clear_page_erms` under `do_huge_pmd_anonymous_page` (`perf record -g`), 5.0-5.4 s
/// of system time; without, 2.1-2.3 s, 10-17% less wall time and 15% less peak memory. A server
/// reuses its memory, and there huge pages are worth keeping: the outliers question asked again
/// of one engine ran 2-4% slower without them (README, "What do the slow requests have in
/// common?").
// The benches include this file and run as the server does: they never call it.
#[allow(dead_code)]
pub(crate) fn for_one_shot() {
    if std::env::var_os(ALLOW_THP_ENV).is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` sets a flag on the process's memory map;
    // it takes no pointers, and fails harmlessly (-1) on kernels without it.
    #[allow(unsafe_code)]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    /// `configure` turns `purge_decommits` off (mimalloc's default is 1), and `PURGE_DECOMMITS`
    /// is the option mimalloc reads from `MIMALLOC_PURGE_DECOMMITS`: this test binary, run again
    /// with that variable at 0, reads 0 at that number (a number naming another option would
    /// read that option's value: 1, 2, 1000, ...). Its own items are local to it: the benches
    /// include this file, and build this module without its tests.
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

        run_alone(
            "allocator::tests::configure_sets_the_option_the_environment_names",
            &[(CHILD, Some("1")), (super::PURGE_DECOMMITS_ENV, Some("0"))],
        );
    }

    /// Runs this test binary again for the one test `name`, with `env` set (`Some`) or removed
    /// (`None`), and asserts that it ran and passed: a case that needs a process of its own.
    // The benches include this file and build this module without its tests.
    #[allow(dead_code)]
    fn run_alone(name: &str, env: &[(&str, Option<&str>)]) {
        let mut child = std::process::Command::new(std::env::current_exe().expect("own path"));
        child.args(["--exact", name, "--nocapture"]);
        for (k, v) in env {
            match v {
                Some(v) => child.env(k, v),
                None => child.env_remove(k),
            };
        }
        let out = child.output().expect("run the test binary again");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{name} with {env:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `for_one_shot` turns transparent huge pages off for the process, and leaves them to
    /// mimalloc when `MIMALLOC_ALLOW_THP` is set (to 1: on); `configure` leaves them. Each case
    /// in a process of its own (this binary again, the one test), which first clears the flag it
    /// may inherit (the flag passes to children).
    #[cfg(target_os = "linux")]
    #[test]
    fn for_one_shot_turns_huge_pages_off_unless_the_environment_names_them() {
        const CHILD: &str = "LOUPE_THP_TEST_CHILD";
        #[allow(unsafe_code)]
        let thp_disabled = || {
            // SAFETY: reads the process's flag; no pointers.
            unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }
        };
        if std::env::var_os(CHILD).is_some() {
            // SAFETY: clears the process's flag; no pointers.
            #[allow(unsafe_code)]
            unsafe {
                libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
            }
            assert_eq!(thp_disabled(), 0, "the kernel's default");
            super::configure();
            assert_eq!(thp_disabled(), 0, "a server keeps huge pages");
            super::for_one_shot();
            let by_environment = std::env::var_os(super::ALLOW_THP_ENV).is_some();
            assert_eq!(thp_disabled(), i32::from(!by_environment));
            return;
        }
        let name =
            "allocator::tests::for_one_shot_turns_huge_pages_off_unless_the_environment_names_them";
        for allow in [None, Some("1")] {
            run_alone(name, &[(CHILD, Some("1")), (super::ALLOW_THP_ENV, allow)]);
        }
    }
}
