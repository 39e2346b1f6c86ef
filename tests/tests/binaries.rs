//! Every program of the workspace answers --help and --version, and they share one
//! documented scoreboard default.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn every_binary_has_help_and_version() {
    for name in ["avisd", "avis-snmp-agent", "avis-nanny", "avis-agent"] {
        let v = Command::new(tests::bin(name)).arg("--version").output().unwrap();
        assert!(v.status.success(), "{name} --version");
        assert_eq!(
            String::from_utf8_lossy(&v.stdout).trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
        let h = Command::new(tests::bin(name)).arg("--help").output().unwrap();
        assert!(h.status.success(), "{name} --help");
        let help = String::from_utf8_lossy(&h.stdout);
        assert!(
            help.contains("--scoreboard") || name == "avisd" && help.contains("--config"),
            "{name}: {help}"
        );
    }
}

#[test]
fn avisd_prints_a_default_configuration_that_it_accepts() {
    let out = Command::new(tests::bin("avisd"))
        .arg("--print-default-config")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("address = \"127.0.0.1:10024\"") && text.contains("smtp:[127.0.0.1]:10025"));
    let dir = tests::TempDir::new("default-config");
    std::fs::write(dir.join("avisd.toml"), &text).unwrap();
    let check = Command::new(tests::bin("avisd"))
        .arg("--config")
        .arg(dir.join("avisd.toml"))
        .arg("--check-config")
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}
