//! Golden-file tests: `render_bytes` must reproduce `tests/golden/*.json` byte for byte.
//! Run with `UPDATE_GOLDEN=1` to rewrite the files after an intended change (and review the
//! diff).

mod common;

use std::path::PathBuf;

use palisade_agent::render_bytes;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

#[test]
fn render_matches_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for (name, policy, opts) in common::golden_cases() {
        let path = golden_dir().join(format!("{name}.json"));
        let actual = render_bytes(&policy, &opts);
        if update {
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        if actual != expected {
            failures.push(format!(
                "{} differs; got:\n{}",
                path.display(),
                String::from_utf8_lossy(&actual)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_golden_file_is_covered() {
    let mut on_disk: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut cases: Vec<String> = common::golden_cases()
        .into_iter()
        .map(|(name, _, _)| format!("{name}.json"))
        .collect();
    cases.sort();
    assert_eq!(on_disk, cases);
}
