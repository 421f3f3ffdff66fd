//! The least-privilege IAM policies in iam/, one per VIP kind: each names
//! exactly the actions the watchdog calls for that kind
//! (`Action::needed`), scoped to resources where EC2 supports it, and
//! passes parliament (PyPI), an IAM policy linter, without a finding.

use std::collections::BTreeSet;
use std::process::Command;

use vip_watchdog::core::seen::Action;
use vip_watchdog::core::target::VipTarget;

fn parliament() -> std::path::PathBuf {
    let venv = std::env::var_os("VIP_WATCHDOG_VENV")
        .unwrap_or_else(|| "/var/tmp/vip-watchdog-venv".into());
    let bin = std::path::Path::new(&venv).join("bin/parliament");
    assert!(
        bin.exists(),
        "{} is missing: ./scripts/test.sh installs parliament",
        bin.display()
    );
    bin
}

/// parliament's findings at LOW and above; empty when it finds nothing.
fn lint(policy: &str) -> (bool, String) {
    let out = Command::new(parliament())
        .args(["--minimum_severity", "LOW", "--string", policy])
        .output()
        .expect("parliament runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && said.trim().is_empty(), said)
}

fn actions(policy: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for st in policy["Statement"].as_array().expect("statements") {
        match &st["Action"] {
            serde_json::Value::String(a) => {
                out.insert(a.clone());
            }
            serde_json::Value::Array(a) => {
                out.extend(a.iter().filter_map(|x| x.as_str().map(str::to_owned)))
            }
            other => panic!("Action {other}"),
        }
    }
    out
}

#[test]
fn each_policy_grants_what_its_kind_calls_and_lints_clean() {
    let kinds = [
        (
            "eip.json",
            VipTarget::EipOnEni {
                allocation_id: "eipalloc-1".into(),
                private_ip: "10.0.0.100".parse().unwrap(),
            },
        ),
        (
            "eip-instance.json",
            VipTarget::EipOnInstance {
                allocation_id: "eipalloc-1".into(),
            },
        ),
        (
            "private-ip.json",
            VipTarget::PrivateIp {
                private_ip: "10.0.0.100".parse().unwrap(),
            },
        ),
        (
            "route.json",
            VipTarget::Route {
                destination: "192.168.100.10/32".into(),
                host: None,
                route_tables: vec!["rtb-1".into()],
            },
        ),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("iam");
    for (file, target) in kinds {
        let text = std::fs::read_to_string(dir.join(file)).expect(file);
        let policy: serde_json::Value = serde_json::from_str(&text).expect(file);
        let want: BTreeSet<String> = Action::needed(&target)
            .iter()
            .map(|a| format!("ec2:{}", a.as_str()))
            .collect();
        assert_eq!(actions(&policy), want, "{file}");
        for st in policy["Statement"].as_array().unwrap() {
            let describes_only = actions(&serde_json::json!({ "Statement": [st] }))
                .iter()
                .all(|a| a.starts_with("ec2:Describe"));
            assert!(
                describes_only || st["Resource"] != "*",
                "{file}: a mutating action on every resource: {st}"
            );
        }
        let (clean, said) = lint(&text);
        assert!(clean, "{file}: parliament: {said}");
    }
    // The linter is not a check that cannot fail: a misspelt action is found.
    let (clean, said) = lint(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ec2:AssociateAddres","Resource":"*"}}"#,
    );
    assert!(!clean && said.contains("Unknown action"), "{said}");
}

/// State tags (`[cloud] state_tags = true`) need one more action, added by
/// iam/state-tags.json: CreateTags, only on the VIPs' resources and only
/// for the watchdog's own tag keys (`core::state_tag::KEY_PREFIX`).
#[test]
fn the_state_tags_policy_grants_create_tags_for_its_own_keys_only() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("iam/state-tags.json");
    let text = std::fs::read_to_string(&path).expect("iam/state-tags.json");
    let policy: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        actions(&policy),
        BTreeSet::from(["ec2:CreateTags".to_owned()])
    );
    let st = &policy["Statement"][0];
    assert_ne!(st["Resource"], "*", "CreateTags on every resource: {st}");
    let keys = &st["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"];
    assert_eq!(
        keys,
        &serde_json::json!([format!("{}*", vip_watchdog::core::state_tag::KEY_PREFIX)]),
        "tag keys limited to the watchdog's own: {st}"
    );
    let (clean, said) = lint(&text);
    assert!(clean, "iam/state-tags.json: parliament: {said}");
}
