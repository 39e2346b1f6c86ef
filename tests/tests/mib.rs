//! net-snmp's own snmptranslate loads the shipped MIB file and resolves every object of
//! the table — amavisd-new's 331 and our subtree — to the OID the table gives it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use agent_mib::{AVIS_OID, OBJECTS, dotted};
use tests::{mib_env, require_tool};

#[test]
fn snmptranslate_resolves_every_name_of_the_shipped_mib_to_its_oid() {
    let tool = require_tool("snmptranslate");
    let names: Vec<String> = OBJECTS.iter().map(|o| format!("AMAVIS-MIB::{}", o.name)).collect();
    let mut cmd = Command::new(tool);
    for (k, v) in mib_env() {
        cmd.env(k, v);
    }
    let out = cmd.arg("-On").args(&names).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "snmptranslate complained: {stderr}"
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), OBJECTS.len());
    for (o, line) in OBJECTS.iter().zip(&lines) {
        assert_eq!(line, &format!(".{}", dotted(o.oid)), "{}", o.name);
    }
    assert_eq!(OBJECTS.iter().filter(|o| !o.oid.starts_with(AVIS_OID)).count(), 331);
}
