//! Keepalived's own health, read while it runs: per VRRP instance its
//! advert and error counters and its base and effective priority (the JSON
//! dump's `stats` and `data`), and per `vrrp_script` its status (the data
//! dump, `keepalived.data`, the only place Keepalived reports it; the JSON
//! dump lists a tracked script's command only).
//!
//! At most one signal a minute: every [`ROUND_GAP`] the process-watch task
//! asks for one dump, chosen by [`Planner`]:
//!
//! 1. The JSON dump first, and whenever nothing below applies: the
//!    counters are at most a minute old.
//! 2. The data dump when the scripts' status was never read from this
//!    Keepalived process.
//! 3. The data dump when an instance's state or effective priority in the
//!    latest JSON dump differs from what it was when the scripts were last
//!    read: a tracked script that fails lowers the priority (a `weight`) or
//!    puts the instance in FAULT, so a script's change is read at most two
//!    rounds after it happened.
//! 4. After a failed data dump, the JSON dump until rule 3 applies again:
//!    a Keepalived that cannot write it is not asked every minute.
//!
//! Keepalived's parent writes the data dump on SIGUSR1 (asked of
//! `keepalived --signum=DATA`), next to the JSON dump, through the same
//! rename as the JSON dump: complete once its last section
//! (`------< Interfaces >------`) is there.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::JsonDumpConfig;
use crate::core::words::VrrpState;
use crate::keepalived::process::Proc;
use crate::keepalived::startup::{DumpError, priority_of, request_dump, signum};

/// One signal at most this often.
pub const ROUND_GAP: std::time::Duration = std::time::Duration::from_secs(60);

/// Keepalived's counters for one instance, as its JSON dump names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub advert_rcvd: u64,
    pub advert_sent: u64,
    pub become_master: u64,
    pub release_master: u64,
    pub packet_len_err: u64,
    pub advert_interval_err: u64,
    pub ip_ttl_err: u64,
    pub invalid_type_rcvd: u64,
    pub addr_list_err: u64,
    pub invalid_authtype: u64,
    pub authtype_mismatch: u64,
    pub auth_failure: u64,
    pub pri_zero_rcvd: u64,
    pub pri_zero_sent: u64,
}

/// One instance in the JSON dump.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStats {
    pub name: String,
    pub state: VrrpState,
    pub base_priority: u8,
    pub effective_priority: u8,
    pub counters: Counters,
}

#[derive(Deserialize)]
struct Entry {
    data: Data,
    /// Absent in a dump of a Keepalived without statistics.
    stats: Option<Counters>,
}

#[derive(Deserialize)]
struct Data {
    iname: String,
    state: i64,
    base_priority: i64,
    effective_priority: i64,
}

/// The counters and priorities of every instance in `keepalived.json`.
pub fn parse_stats(text: &str) -> Result<Vec<InstanceStats>, DumpError> {
    let entries: Vec<Entry> =
        serde_json::from_str(text).map_err(|e| DumpError::Parse(e.to_string()))?;
    entries
        .into_iter()
        .map(|e| {
            let d = e.data;
            let priority = |field: &str, p: i64| priority_of(&d.iname, field, p);
            Ok(InstanceStats {
                state: crate::keepalived::startup::state_of(d.state),
                base_priority: priority("base_priority", d.base_priority)?,
                effective_priority: priority("effective_priority", d.effective_priority)?,
                counters: e.stats.unwrap_or_default(),
                name: d.iname,
            })
        })
        .collect()
}

/// The last section of Keepalived's data dump: the file is complete once
/// it is there.
const LAST_SECTION: &str = "------< Interfaces >------";
const SCRIPTS_SECTION: &str = "------< VRRP Scripts >------";

/// Each `vrrp_script`'s status in `keepalived.data` (true: GOOD). A dump
/// with no scripts gives none.
pub fn parse_scripts(text: &str) -> Result<BTreeMap<String, bool>, DumpError> {
    if !text.lines().any(|l| l.trim() == LAST_SECTION) {
        return Err(DumpError::Parse(format!(
            "no {LAST_SECTION:?} section yet: the dump is incomplete"
        )));
    }
    let mut scripts = BTreeMap::new();
    let mut in_scripts = false;
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("------<") {
            if let Some(name) = current.take() {
                return Err(DumpError::Parse(format!(
                    "script {name:?} has no Status line"
                )));
            }
            in_scripts = t == SCRIPTS_SECTION;
            continue;
        }
        if !in_scripts {
            continue;
        }
        if let Some(name) = t.strip_prefix("VRRP Script = ") {
            if let Some(previous) = current.replace(name.to_owned()) {
                return Err(DumpError::Parse(format!(
                    "script {previous:?} has no Status line"
                )));
            }
        } else if let Some(status) = t.strip_prefix("Status = ") {
            let Some(name) = current.take() else {
                return Err(DumpError::Parse(format!(
                    "a Status line outside a script: {line:?}"
                )));
            };
            let good = match status {
                "GOOD" => true,
                "BAD" => false,
                other => {
                    return Err(DumpError::Parse(format!(
                        "script {name:?}: Status {other:?} is neither GOOD nor BAD"
                    )));
                }
            };
            scripts.insert(name, good);
        }
    }
    match current {
        Some(name) => Err(DumpError::Parse(format!(
            "script {name:?} has no Status line"
        ))),
        None => Ok(scripts),
    }
}

/// Which dump a round asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Json,
    Data,
}

/// What decides a round's dump (rules 1-4 of the module doc). Pure.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Planner {
    /// Each instance's (state, effective priority) in the latest JSON dump.
    latest: Option<Vec<(String, VrrpState, u8)>>,
    /// The same, as it was when the scripts were last read (or a data dump
    /// last failed).
    scripts_at: Option<Vec<(String, VrrpState, u8)>>,
}

impl Planner {
    pub fn next(&self) -> Ask {
        match (&self.latest, &self.scripts_at) {
            // Rule 1.
            (None, _) => Ask::Json,
            // Rule 2.
            (Some(_), None) => Ask::Data,
            // Rule 3.
            (Some(latest), Some(at)) if latest != at => Ask::Data,
            // Rules 1 and 4.
            _ => Ask::Json,
        }
    }

    pub fn json_read(&mut self, instances: &[InstanceStats]) {
        self.latest = Some(
            instances
                .iter()
                .map(|i| (i.name.clone(), i.state, i.effective_priority))
                .collect(),
        );
    }

    /// A data dump was read, or failed (rule 4): either way the scripts are
    /// not asked again until the instances change.
    pub fn data_done(&mut self) {
        self.scripts_at = self.latest.clone();
    }
}

/// What a round read.
#[derive(Debug)]
pub enum Read {
    Stats(Vec<InstanceStats>),
    Scripts(BTreeMap<String, bool>),
}

/// Asks Keepalived's main process for one dump and reads it.
pub async fn round(ask: Ask, cfg: &JsonDumpConfig, main: &Proc) -> Result<Read, DumpError> {
    match ask {
        Ask::Json => {
            let signal = match cfg.signal {
                Some(s) => s,
                None => signum(cfg, "JSON").await?,
            };
            request_dump(main, signal, &cfg.file, cfg.timeout, parse_stats)
                .await
                .map(Read::Stats)
        }
        Ask::Data => {
            let signal = signum(cfg, "DATA").await?;
            request_dump(main, signal, &data_file(cfg), cfg.timeout, parse_scripts)
                .await
                .map(Read::Scripts)
        }
    }
}

/// `keepalived.data`, next to the JSON dump (both in Keepalived's TMPDIR).
pub fn data_file(cfg: &JsonDumpConfig) -> PathBuf {
    cfg.file.with_file_name("keepalived.data")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dump of Keepalived 2.2.7, trimmed to what is read.
    const JSON: &str = r#"[{"data":{"iname":"VI_1","state":2,"base_priority":150,"effective_priority":150,"vrid":51},
        "stats":{"advert_rcvd":3,"advert_sent":120,"become_master":1,"release_master":0,"packet_len_err":0,
        "advert_interval_err":0,"ip_ttl_err":0,"invalid_type_rcvd":0,"addr_list_err":0,"invalid_authtype":0,
        "authtype_mismatch":0,"auth_failure":2,"pri_zero_rcvd":0,"pri_zero_sent":1}},
        {"data":{"iname":"VI_2","state":3,"base_priority":100,"effective_priority":90}}]"#;

    #[test]
    fn the_json_dump_gives_each_instances_counters_and_priorities() {
        let got = parse_stats(JSON).expect("parses");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "VI_1");
        assert_eq!(got[0].state, VrrpState::Master);
        assert_eq!(
            (got[0].base_priority, got[0].effective_priority),
            (150, 150)
        );
        assert_eq!(got[0].counters.advert_sent, 120);
        assert_eq!(got[0].counters.auth_failure, 2);
        assert_eq!(got[0].counters.pri_zero_sent, 1);
        // No stats object: zeros, not an error.
        assert_eq!(got[1].state, VrrpState::Fault);
        assert_eq!(got[1].counters, Counters::default());
        assert_eq!(got[1].effective_priority, 90);
    }

    #[test]
    fn a_bad_json_dump_is_an_error_naming_what() {
        for (bad, says) in [
            ("[", "EOF"),
            (
                r#"[{"data":{"iname":"VI_1","state":2,"base_priority":300,"effective_priority":1}}]"#,
                "base_priority 300",
            ),
            (
                r#"[{"data":{"iname":"VI_1","state":2,"base_priority":1,"effective_priority":-1}}]"#,
                "effective_priority -1",
            ),
            (r#"[{"data":{"iname":"VI_1","state":2}}]"#, "base_priority"),
        ] {
            let e = parse_stats(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// The shape of `keepalived.data` (Keepalived 2.2.7's dump_vscript),
    /// trimmed.
    const DATA: &str = "------< Global definitions >------
 Network namespace = (default)
------< VRRP Topology >------
 VRRP Instance = VI_1
   State = MASTER
------< VRRP Scripts >------
 VRRP Script = chk_haproxy
   Command = '/usr/bin/killall' '-0' 'haproxy'
   Interval = 1 sec
   Weight = 0
   Rise = 1
   Fall = 1
   Result = 1
   Init state = INIT
   Status = GOOD
   Script uid:gid = 0:0
   VRRP instances :
     VI_1, weight 0
   State = idle
 VRRP Script = chk_disk
   Command = '/bin/false'
   Result = 0
   Status = BAD
   State = idle
------< Interfaces >------
 Name = eth0
";

    #[test]
    fn the_data_dump_gives_each_scripts_status() {
        let got = parse_scripts(DATA).expect("parses");
        assert_eq!(
            got,
            BTreeMap::from([
                ("chk_disk".to_owned(), false),
                ("chk_haproxy".to_owned(), true)
            ])
        );
        // An instance's `State = MASTER` outside the scripts section is
        // not a script's.
        let none = DATA.replace(
            &DATA[DATA.find(SCRIPTS_SECTION).unwrap()..DATA.find(LAST_SECTION).unwrap()],
            "",
        );
        assert_eq!(parse_scripts(&none).expect("parses"), BTreeMap::new());
    }

    #[test]
    fn an_incomplete_or_bad_data_dump_is_an_error_naming_what() {
        let cut = &DATA[..DATA.find(LAST_SECTION).unwrap()];
        assert!(
            parse_scripts(cut)
                .unwrap_err()
                .to_string()
                .contains("incomplete")
        );
        let no_status = DATA.replace("   Status = GOOD\n", "");
        assert!(
            parse_scripts(&no_status)
                .unwrap_err()
                .to_string()
                .contains("\"chk_haproxy\" has no Status line")
        );
        let odd = DATA.replace("Status = BAD", "Status = MAYBE");
        assert!(
            parse_scripts(&odd)
                .unwrap_err()
                .to_string()
                .contains("\"MAYBE\"")
        );
    }

    fn stats(state: VrrpState, priority: u8) -> Vec<InstanceStats> {
        vec![InstanceStats {
            name: "VI_1".into(),
            state,
            base_priority: 150,
            effective_priority: priority,
            counters: Counters::default(),
        }]
    }

    /// Each case names its rule; the planner is driven through a sequence
    /// of reads and the ask before each is checked.
    #[test]
    fn planner_table() {
        use Ask::*;
        use VrrpState::*;
        enum Step {
            Json(VrrpState, u8),
            Data,
        }
        let cases: &[(&str, &[Step], Ask)] = &[
            ("rule 1: the JSON dump first", &[], Json),
            (
                "rule 2: scripts never read",
                &[Step::Json(Master, 150)],
                Data,
            ),
            (
                "rule 1: nothing changed since the scripts were read",
                &[Step::Json(Master, 150), Step::Data, Step::Json(Master, 150)],
                Json,
            ),
            (
                "rule 3: the priority changed (a weighted script)",
                &[Step::Json(Master, 150), Step::Data, Step::Json(Master, 140)],
                Data,
            ),
            (
                "rule 3: the state changed (FAULT)",
                &[Step::Json(Backup, 100), Step::Data, Step::Json(Fault, 100)],
                Data,
            ),
            (
                "rule 4: a failed or done data dump waits for the next change",
                &[
                    Step::Json(Master, 150),
                    Step::Data,
                    Step::Json(Fault, 150),
                    Step::Data,
                    Step::Json(Fault, 150),
                ],
                Json,
            ),
        ];
        for (name, steps, want) in cases {
            let mut p = Planner::default();
            for s in *steps {
                match s {
                    Step::Json(state, prio) => p.json_read(&stats(*state, *prio)),
                    Step::Data => p.data_done(),
                }
            }
            assert_eq!(p.next(), *want, "{name}");
        }
    }
}
