//! `mailgate admin …` against a running server, as the README's first steps use it: log in
//! once, then one command per change; the token lives in the user's configuration directory.

mod common;

use common::*;
use std::process::Command;

fn admin(config_home: &std::path::Path, args: &[&str], password: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailgate"));
    cmd.arg("admin")
        .args(args)
        .env("XDG_CONFIG_HOME", config_home);
    cmd.env_remove("MAILGATE_PASSWORD")
        .env_remove("MAILGATE_ORG");
    if let Some(p) = password {
        cmd.env("MAILGATE_PASSWORD", p);
    }
    let out = cmd.output().expect("run mailgate admin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn an_owner_sets_up_a_domain_mailbox_alias_and_grant_from_the_command_line() {
    let (dir, seeded, server) = seeded_server("lr");
    let home = dir.path().join("home");
    let url = format!("http://{}", server.addr("admin (HTTP)"));
    let (ok, out) = admin(&home, &["me"], None);
    assert!(!ok && out.contains("not logged in"), "{out}");
    let (ok, out) = admin(
        &home,
        &["login", OWNER, "--server", &url],
        Some(OWNER_PASSWORD),
    );
    assert!(ok, "{out}");
    let saved = std::fs::read_to_string(home.join("mailgate/admin.json")).unwrap();
    assert!(saved.contains("token"), "{saved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("mailgate/admin.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the token file is private");
    }
    let (ok, out) = admin(&home, &["domains", "add", "sales.example"], None);
    assert!(ok && out.contains("sales.example"), "{out}");
    let (ok, out) = admin(
        &home,
        &[
            "mailboxes",
            "create",
            "team@sales.example",
            "--password",
            "team-password-1",
        ],
        None,
    );
    assert!(ok, "{out}");
    let created: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let id = created["id"].as_u64().unwrap().to_string();
    let (ok, out) = admin(&home, &["aliases", "add", "hi@sales.example", &id], None);
    assert!(ok, "{out}");
    let lucie = seeded.lucie.to_string();
    let (ok, out) = admin(
        &home,
        &["grants", "add", "--user", &lucie, "--mailbox", &id, "read"],
        None,
    );
    assert!(ok && out.contains("\"rights\": \"lrs\""), "{out}");
    // Holiday cover: a grant that ends by itself, its end given as RFC 3339.
    let until = ["--until", "2099-01-04T09:00:00Z"];
    let args = [
        "grants",
        "add",
        "--user",
        &lucie,
        "--mailbox",
        &id,
        "send-as",
        until[0],
        until[1],
    ];
    let (ok, out) = admin(&home, &args, None);
    assert!(
        ok && out.contains("\"valid_until\": 4071200400000"),
        "{out}"
    );
    let (ok, out) = admin(
        &home,
        &["grants", "add", "--user", &lucie, "read", "--until", "soon"],
        None,
    );
    assert!(!ok && out.contains("RFC 3339"), "{out}");
    let (ok, out) = admin(&home, &["mailboxes", "access", &id], None);
    assert!(ok && out.contains(LUCIE), "{out}");
    let (ok, out) = admin(&home, &["domains", "add", "sales.example"], None);
    assert!(
        !ok && out.contains("409"),
        "errors say what went wrong: {out}"
    );
    let (ok, out) = admin(&home, &["audit", "--action", "mailbox."], None);
    assert!(ok && out.contains("mailbox.create"), "{out}");
    // `use` names the organization commands act in, by id (or name); an unknown one is refused.
    let org = seeded.org.to_string();
    let (ok, out) = admin(&home, &["use", &org], None);
    assert!(ok && out.contains(&format!("organization {org}")), "{out}");
    let (ok, out) = admin(&home, &["grants", "list"], None);
    assert!(ok && out.contains("valid_until"), "{out}");
    let (ok, out) = admin(&home, &["orgs", "list"], None);
    assert!(
        !ok && out.contains("403"),
        "an owner is no server operator: {out}"
    );
    let (ok, out) = admin(&home, &["use", "no-such-organization"], None);
    assert!(!ok && out.contains("no organization"), "{out}");
    let (ok, out) = admin(&home, &["logout"], None);
    assert!(ok, "{out}");
    let (ok, _) = admin(&home, &["me"], None);
    assert!(!ok, "logged out");
}

/// The operator's organization commands (issue 12): create, suspend, resume and delete from
/// the command line; and `MAILGATE_ORG` naming the organization one command acts in.
#[test]
fn an_operator_runs_organizations_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), "lr");
    let config = EPHEMERAL.replace(
        "[admin]\n",
        "[admin]\norganization_deletion_grace_days = 30\n",
    );
    let server = start_with(
        dir.path(),
        &format!("{config}\n[bootstrap]\norganization = \"Acme\"\nowner = \"{OWNER}\"\n"),
    );
    let home = dir.path().join("home");
    let url = format!("http://{}", server.addr("admin (HTTP)"));
    let (ok, out) = admin(
        &home,
        &["login", OWNER, "--server", &url],
        Some(OWNER_PASSWORD),
    );
    assert!(ok, "{out}");
    let (ok, out) = admin(
        &home,
        &["orgs", "create", "Beta", "--owner", "boss@beta.example"],
        None,
    );
    assert!(ok && out.contains("initial_password"), "{out}");
    let beta: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = beta["id"].to_string();
    let (ok, out) = admin(&home, &["orgs", "suspend", &id], None);
    assert!(ok && out.contains("\"since\""), "{out}");
    let (ok, out) = admin(&home, &["orgs", "resume", &id], None);
    assert!(ok && out.contains("\"suspension\": null"), "{out}");
    let (ok, out) = admin(&home, &["orgs", "delete", &id], None);
    assert!(ok && out.contains("\"deletion_due\""), "{out}");
    let (ok, out) = admin(&home, &["orgs", "list"], None);
    assert!(
        ok && out.contains("deletion_due"),
        "still there, for 30 days: {out}"
    );

    // MAILGATE_ORG wins for one command: Acme's domains, then none of Beta's to see.
    let with_org = |org: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_mailgate"))
            .args(["admin", "domains", "list"])
            .env("XDG_CONFIG_HOME", &home)
            .env("MAILGATE_ORG", org)
            .output()
            .expect("run mailgate admin");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, out) = with_org(&seeded.org.to_string());
    assert!(ok && out.contains("acme.example"), "{out}");
    let (ok, out) = with_org(&id);
    assert!(!ok && out.contains("404"), "{out}");
}
