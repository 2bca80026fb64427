//! `mailgate check-config` against bad files: every error with its key path,
//! the value and the fix; exit 0 on the documented example.

use std::{fs, path::Path, process::Command};

fn check(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("MAILGATE_TEST_UNSET_VAR")
        .env("SUPPORT_IMAP_PASSWORD", "from-env")
        .output()
        .expect("run mailgate");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
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
