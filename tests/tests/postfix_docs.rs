//! `docs/postfix.md` quotes exactly the Postfix and avisd snippets the topology tests
//! run (`tests/src/postfix.rs`), rendered with the production ports, so the two cannot
//! drift. `AVIS_BLESS=1 cargo test -p tests --test postfix_docs` rewrites the quoted
//! blocks from the source.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use tests::postfix::{AVISD_TOML, Kind, Ports, Postfix, doc_snippets, snippet_block};
use tests::{TempDir, bin, require_tool};

#[test]
fn the_postfix_guide_quotes_every_snippet_the_tests_run_verbatim() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/postfix.md");
    let mut doc = std::fs::read_to_string(&path).expect("docs/postfix.md");
    let bless = std::env::var_os("AVIS_BLESS").is_some();
    let mut stale = Vec::new();
    let snippets = doc_snippets();
    assert!(snippets.len() >= 5, "the snippets are listed");
    for (name, lang, text) in &snippets {
        let Some(range) = snippet_block(&doc, name, lang) else {
            panic!("docs/postfix.md has no block after `<!-- snippet: {name} -->` opening with ```{lang}");
        };
        if doc[range.clone()] != **text {
            if bless {
                doc.replace_range(range, text);
            } else {
                stale.push(format!(
                    "{name}:\n--- doc ---\n{}--- tests run ---\n{text}",
                    &doc[range]
                ));
            }
        }
    }
    if bless {
        std::fs::write(&path, &doc).expect("write docs/postfix.md");
    }
    assert!(
        stale.is_empty(),
        "docs/postfix.md differs from what the tests run (AVIS_BLESS=1 rewrites it):\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_documented_snippets_with_production_ports_pass_postfix_and_avisd_checks() {
    let dir = TempDir::new("pf-docs");
    let prod = Ports::production();
    for kind in [Kind::AfterQueue, Kind::BeforeQueue] {
        let root = dir.join(&format!("{kind:?}"));
        let pf = Postfix::create(&root, 10026, &kind.main_cf(&prod), &kind.master_cf(&prod));
        for args in [["-n"], ["-M"]] {
            let out = Command::new(require_tool("postconf"))
                .arg("-c")
                .arg(&pf.config_dir)
                .args(args)
                .output()
                .expect("postconf");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && err.is_empty(),
                "postconf {args:?} for {kind:?}: {err}"
            );
        }
    }
    let config = dir.join("avisd.toml");
    std::fs::write(&config, prod.render(AVISD_TOML)).expect("write avisd.toml");
    let out = Command::new(bin("avisd"))
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .expect("avisd --check-config");
    assert!(
        out.status.success(),
        "the documented avisd.toml is valid: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
