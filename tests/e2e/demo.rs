//! The main job: `loupe demo` runs end to end and shows the incident it planted.

use std::process::Command;

use crate::support::LOUPE;

#[test]
fn demo_runs_end_to_end_and_reports_its_incident() {
    let out = Command::new(LOUPE)
        .args(["demo", "--events", "6000", "--seed", "3"])
        .env("LOUPE_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // every event it generated was acknowledged, and the broken batch was reported per event
    assert!(stdout.contains("6000 events ("), "{stdout}");
    // ... and they came through the SDK's layer and exporter, none lost on the way
    assert!(
        stdout.contains("The SDK's own count: 6000 sent, 0 refused, 0 dropped."),
        "{stdout}"
    );
    assert!(stdout.contains("1 accepted, 2 rejected"), "{stdout}");
    assert!(
        stdout.contains("sample_rate must be a number >= 1"),
        "{stdout}"
    );
    // sampling kept every error and its weights account for every generated event
    let errors = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("Errors:"))
        .unwrap_or_else(|| panic!("no sampling line: {stdout}"));
    let numbers: Vec<f64> = errors
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .filter_map(|w| w.parse().ok())
        .collect();
    // Errors: G generated, S stored. Weighted total: W events vs N generated (P%).
    assert_eq!(numbers.len(), 5, "{errors}");
    assert_eq!(numbers[0], numbers[1], "every error is kept: {errors}");
    assert_eq!(numbers[3], 6000.0, "{errors}");
    // Unbiased (sampling/src/tests_weights.rs: mean +0.4% +- 0.6% over 400 seeds), but one
    // run of 6000 events, 3800 of them at rates up to ~80 and decided per trace, has a
    // standard deviation of ~8.4%: the bound is three of them. Weights ignored would be -80%.
    assert!(
        numbers[4].abs() < 25.0,
        "weighted total off by {}%: {errors}",
        numbers[4]
    );
    assert!(stdout.contains("key (service|status)"), "{stdout}");
    // the planted incident is named and its share of the window reported
    let planted = stdout
        .lines()
        .find(|l| l.contains("What was planted:"))
        .unwrap_or_else(|| panic!("no incident line: {stdout}"));
    assert!(planted.contains("duration_ms x8"), "{planted}");
    // the outliers engine, on the spike's slow requests, puts the planted cause first
    assert!(
        stdout.contains("The planted cause is the top explanation."),
        "{stdout}"
    );
    // the latency SLO pages on the spike: the 1h/5m rule's line says FIRES, and the demo
    // names the burn rates that made it
    let fast = stdout
        .lines()
        .find(|l| l.contains("burn > 14.4 over 1h and 5m"))
        .unwrap_or_else(|| panic!("no fast-burn rule in the SLO status: {stdout}"));
    assert!(fast.ends_with("FIRES"), "{fast}");
    assert!(stdout.contains("the fast-burn page fires."), "{stdout}");
    assert!(stdout.contains("Done in"), "{stdout}");
}
