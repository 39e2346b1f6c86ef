//! The configuration's behaviour: the embedded default, every problem reported with its
//! file, line and key, and per-recipient lookups.

use super::*;

#[test]
fn the_embedded_default_listens_on_10024_and_forwards_to_10025() {
    let c = Config::load(None).unwrap();
    assert_eq!(
        c.listeners[0].address,
        ListenAddress::Tcp("127.0.0.1:10024".parse().unwrap())
    );
    assert_eq!(
        c.policy("default").unwrap().forward.to_string(),
        "smtp:[127.0.0.1]:10025"
    );
    assert_eq!(c.scoreboard, PathBuf::from("avis-state/scoreboard"));
}

#[test]
fn every_invalid_value_is_reported_with_its_key_and_line() {
    let text = "[daemon]\nstate_dir = \"s\"\nmax_servers = 0\n\n[[listen]]\naddress = \"nowhere\"\npolicy = \"x\"\n\n[policy.default]\nforward = \"ftp:[h]:1\"\nmynetworks = [\"10.0.0.0/99\"]\n";
    let Err(ConfigError::Invalid(problems)) = Config::parse(text, "avisd.toml") else {
        panic!("accepted")
    };
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(|p| p.starts_with("avisd.toml:3: daemon.max_servers:")),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|p| p.starts_with("avisd.toml:6: listen[0].address:")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|p| p.starts_with("avisd.toml:10: policy.default.forward:")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|p| p.starts_with("avisd.toml:11: policy.default.mynetworks[0]:")),
        "{shown:?}"
    );
}

#[test]
fn unknown_keys_and_syntax_errors_name_the_line() {
    let err = Config::parse(
        "[daemon]\nstate_dir = \"s\"\nmax_servers = 2\nmax_server = 3\n",
        "f.toml",
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("f.toml") && msg.contains("line 4") && msg.contains("max_server"),
        "{msg}"
    );
}

#[test]
fn checks_report_unknown_keys_bad_rules_and_destinies_by_line() {
    let text = "[daemon]\nstate_dir = \"s\"\nmax_servers = 2\n\n[[listen]]\naddress = \"127.0.0.1:1\"\n\n[policy.default]\nforward = \"smtp:[h]:1\"\n\n[policy.default.checks]\nspam_kil_level = 3\nbanned_names = [\"(unclosed\"]\nfinal_spam_destiny = \"drop\"\nspamd = \"localhost\"\n\n[[policy.default.checks.recipients]]\nmatch = [\".example.org\"]\nspam_lover = true\nspam_lovr = true\n";
    let Err(ConfigError::Invalid(problems)) = Config::parse(text, "c.toml") else {
        panic!("accepted")
    };
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        shown
            .iter()
            .any(|p| p.starts_with("c.toml:12: policy.default.checks.spam_kil_level: unknown key")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|p| p.starts_with("c.toml:13: policy.default.checks.banned_names[0]: bad regular expression")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|p| p.starts_with("c.toml:14: policy.default.checks.final_spam_destiny")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|p| p.starts_with("c.toml:15: policy.default.checks.spamd")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|p| p.starts_with("c.toml:20: policy.default.checks.recipients[0].spam_lovr: unknown key")),
        "{shown:?}"
    );
}

#[test]
fn per_recipient_settings_override_the_bank_first_match_wins() {
    let text = "[daemon]\nstate_dir = \"s\"\nmax_servers = 2\n\n[[listen]]\naddress = \"127.0.0.1:1\"\n\n[policy.default]\nforward = \"smtp:[h]:1\"\n\n[policy.default.checks]\nspam_kill_level = 5.0\n\n[[policy.default.checks.recipients]]\nmatch = [\"boss@example.com\"]\nspam_kill_level = 20.0\n\n[[policy.default.checks.recipients]]\nmatch = [\".example.com\"]\nspam_lover = true\n";
    let c = Config::parse(text, "c.toml").unwrap();
    let checks = &c.policy("default").unwrap().checks;
    let boss = checks.recipient("boss@example.com", true);
    assert_eq!((boss.kill_level, boss.spam_lover), (Some(20.0), false));
    let staff = checks.recipient("staff@mx.example.com", true);
    assert_eq!((staff.kill_level, staff.spam_lover), (Some(5.0), true));
}

#[test]
fn networks_and_local_domains_match_like_amavisd_maps() {
    let n = Network::parse("192.168.0.0/16").unwrap();
    assert!(n.contains("192.168.4.5".parse().unwrap()));
    assert!(!n.contains("192.169.0.1".parse().unwrap()));
    assert!(n.contains("::ffff:192.168.1.1".parse().unwrap()));
    assert!(Network::parse("::1").unwrap().contains("::1".parse().unwrap()));
    let mut c = Config::load(None).unwrap();
    let p = c.policies.get_mut("default").unwrap();
    p.local_domains = vec!["example.com".into()];
    assert!(p.is_local("a@example.com") && p.is_local("a@mx.Example.COM") && !p.is_local("a@example.org"));
}

#[test]
fn the_scoreboard_group_is_a_known_group_name_or_a_number() {
    let base = "[daemon]\nstate_dir = \"s\"\nmax_servers = 2\n";
    let rest = "\n[[listen]]\naddress = \"127.0.0.1:1\"\n\n[policy.default]\nforward = \"smtp:[h]:1\"\n";
    let with = |group: &str| format!("{base}scoreboard_group = \"{group}\"\n{rest}");
    assert_eq!(Config::parse(&with("root"), "t").unwrap().scoreboard_group, Some(0));
    assert_eq!(Config::parse(&with("4242"), "t").unwrap().scoreboard_group, Some(4242));
    assert_eq!(
        Config::parse(&format!("{base}{rest}"), "t").unwrap().scoreboard_group,
        None
    );
    let Err(ConfigError::Invalid(problems)) = Config::parse(&with("no-such-group-avis"), "t.toml") else {
        panic!("accepted")
    };
    assert!(
        problems
            .iter()
            .any(|p| p.to_string() == "t.toml:4: daemon.scoreboard_group: no such group"),
        "{problems:?}"
    );
}

#[test]
fn the_daemon_section_names_the_user_to_become_and_defaults_to_a_private_umask_without_root() {
    let base = "[[listen]]\naddress = \"127.0.0.1:1\"\n\n[policy.default]\nforward = \"smtp:[h]:1\"\n";
    let c = Config::parse(
        &format!("[daemon]\nstate_dir = \"s\"\nmax_servers = 1\n\n{base}"),
        "a.toml",
    )
    .unwrap();
    assert_eq!((c.user, c.group, c.allow_root, c.umask), (None, None, false, 0o027));
    let c = Config::parse(
        &format!(
            "[daemon]\nstate_dir = \"s\"\nmax_servers = 1\nuser = \"avis\"\ngroup = \"mail\"\numask = 0o077\n\n{base}"
        ),
        "b.toml",
    )
    .unwrap();
    assert_eq!(
        (c.user.as_deref(), c.group.as_deref(), c.umask),
        (Some("avis"), Some("mail"), 0o077)
    );
    let Err(ConfigError::Invalid(problems)) = Config::parse(
        &format!("[daemon]\nstate_dir = \"s\"\nmax_servers = 1\nuser = \"\"\numask = 0o1777\n\n{base}"),
        "c.toml",
    ) else {
        panic!("accepted")
    };
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(|p| p.starts_with("c.toml:4: daemon.user:")),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|p| p.starts_with("c.toml:5: daemon.umask:")),
        "{shown:?}"
    );
}

/// Issue 12: the config accepted scanner endpoints (port 0, no host, an unbracketed IPv6
/// address) that the scanner clients then refused for every message and silently dropped,
/// so the message went unscanned. One grammar now: refused at load, with line and key.
#[test]
fn scanner_endpoints_the_clients_cannot_use_are_refused_at_load_with_line_and_key() {
    let text = "[daemon]\nstate_dir = \"s\"\nmax_servers = 2\n\n[[listen]]\naddress = \"127.0.0.1:1\"\n\n[policy.default]\nforward = \"smtp:[h]:1\"\n\n[policy.default.checks]\nvirus_scanners = [\"tcp:127.0.0.1:0\"]\nvirus_scanners_backup = [\"tcp::3310\"]\nspamd = \"::1:783\"\nrspamd = \"unix:relative\"\n";
    let Err(ConfigError::Invalid(problems)) = Config::parse(text, "c.toml") else {
        panic!("accepted")
    };
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    for (line, key, why) in [
        (12, "virus_scanners[0]", "port 0"),
        (13, "virus_scanners_backup[0]", "no host"),
        (14, "spamd", "brackets"),
        (15, "rspamd", "absolute"),
    ] {
        let want = format!("c.toml:{line}: policy.default.checks.{key}: ");
        assert!(
            shown.iter().any(|p| p.starts_with(&want) && p.contains(why)),
            "{want} {why}: {shown:?}"
        );
    }
}

/// The endpoints are parsed once, at load: the checks get typed endpoints.
#[test]
fn scanner_endpoints_are_parsed_at_load() {
    let text = "[daemon]\nstate_dir = \"s\"\nmax_servers = 2\n\n[[listen]]\naddress = \"127.0.0.1:1\"\n\n[policy.default]\nforward = \"smtp:[h]:1\"\n\n[policy.default.checks]\nvirus_scanners = [\"127.0.0.1:3310\"]\nvirus_scanners_backup = [\"unix:/run/clamav/clamd.ctl\"]\nspamd = \"[::1]:783\"\n";
    let c = Config::parse(text, "c.toml").unwrap();
    let s = &c.policy("default").unwrap().checks.scanners;
    assert_eq!(s.virus_primary, vec![endpoint::Endpoint::Tcp("127.0.0.1".into(), 3310)]);
    assert_eq!(
        s.virus_backup,
        vec![endpoint::Endpoint::Unix("/run/clamav/clamd.ctl".into())]
    );
    assert_eq!(s.spamd, Some(endpoint::Endpoint::Tcp("::1".into(), 783)));
    assert_eq!(s.rspamd, None);
}

/// Every default lives in one place (`config::defaults` and the `Default` impls of the
/// policy types); the embedded `default.toml` writes many of them out for the reader.
/// Both must say the same: the embedded file configures exactly what a file giving only
/// the required keys does.
#[test]
fn the_embedded_default_config_and_the_built_in_defaults_agree() {
    let minimal = "[daemon]\nstate_dir = \"avis-state\"\nmax_servers = 8\n\n[[listen]]\naddress = \"127.0.0.1:10024\"\n\n[policy.default]\nforward = \"smtp:[127.0.0.1]:10025\"\n";
    let embedded = Config::parse(DEFAULT_TOML, "same").unwrap();
    let built_in = Config::parse(minimal, "same").unwrap();
    assert_eq!(format!("{embedded:#?}"), format!("{built_in:#?}"));
}

/// A listener that names no bank applies `default`; when there is none, the problem is
/// reported at the listener (the absent key has no line of its own).
#[test]
fn a_listener_without_a_policy_applies_the_default_bank_and_is_reported_at_its_address() {
    let text = "[daemon]\nstate_dir = \"s\"\nmax_servers = 2\n\n[[listen]]\naddress = \"127.0.0.1:1\"\n\n[policy.other]\nforward = \"smtp:[h]:1\"\n";
    let Err(ConfigError::Invalid(problems)) = Config::parse(text, "c.toml") else {
        panic!("accepted")
    };
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(shown, vec!["c.toml:6: listen[0].policy: no [policy.default]"]);
}
