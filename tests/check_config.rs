//! `mailgate check-config` against bad files: every error with its key path,
//! the value and the fix; exit 0 on the documented example.

mod support;

use std::{fs, path::Path};

fn check(path: &Path) -> (bool, String) {
    support::cli(
        &[
            "check-config".as_ref(),
            "--config".as_ref(),
            path.as_os_str(),
        ],
        &[
            ("MAILGATE_TEST_UNSET_VAR", None),
            ("SUPPORT_IMAP_PASSWORD", Some("from-env")),
        ],
    )
}

#[test]
fn bad_files_report_every_error_with_its_key_path() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            path.display()
        );
        let (ok, output) = check(&path);
        assert!(!ok, "{} should be rejected", path.display());
        for e in expected {
            assert!(
                output.contains(e),
                "{}: missing {e:?} in:\n{output}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 4);
}

#[test]
fn the_documented_example_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mailgate.example.toml");
    let (ok, output) = check(&example);
    assert!(ok, "{output}");
    assert!(output.contains("valid"), "{output}");
}
