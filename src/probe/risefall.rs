//! Rise/fall hysteresis: `rise` consecutive successes to go up, `fall`
//! consecutive failures to go down. Pure; the probe task feeds it.

use crate::core::words::Health;

#[derive(Debug, Clone)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    health: Health,
    successes: u32,
    failures: u32,
}

impl RiseFall {
    /// Starts `Unknown`: no result yet is neither healthy nor failing.
    pub fn new(rise: u32, fall: u32) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            health: Health::Unknown,
            successes: 0,
            failures: 0,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Records one result; returns the new health when it changed.
    pub fn record(&mut self, ok: bool) -> Option<Health> {
        let next = if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            (self.successes >= self.rise).then_some(Health::Up)
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            (self.failures >= self.fall).then_some(Health::Down)
        };
        match next {
            Some(h) if h != self.health => {
                self.health = h;
                Some(h)
            }
            _ => None,
        }
    }
}

/// What the probe task tells the owner: each health change, and, while
/// the health holds, a new detail from a run that agrees with it (a probe
/// that went down on "connection refused" and now fails on a certificate
/// says so). A run that disagrees (one failure while up, short of `fall`)
/// says nothing: its detail is not the health's.
#[derive(Debug, Clone)]
pub struct Reporter {
    rf: RiseFall,
    sent: Option<String>,
}

impl Reporter {
    pub fn new(rise: u32, fall: u32) -> Self {
        Self {
            rf: RiseFall::new(rise, fall),
            sent: None,
        }
    }

    /// Records one run; returns the health to send with `detail`, if any.
    pub fn record(&mut self, ok: bool, detail: &str) -> Option<Health> {
        let changed = self.rf.record(ok);
        let health = self.rf.health();
        let agrees = match health {
            Health::Up => ok,
            Health::Down => !ok,
            Health::Unknown => false,
        };
        let send = changed.is_some() || (agrees && self.sent.as_deref() != Some(detail));
        if send {
            self.sent = Some(detail.to_owned());
            Some(health)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

    /// (case, rise/fall 2/2, runs as (ok, detail), what is sent after each)
    #[test]
    fn reporter_table() {
        type Row = (
            &'static str,
            &'static [(bool, &'static str)],
            &'static [Option<Health>],
        );
        let rows: &[Row] = &[
            (
                "a transition is sent with its detail",
                &[(false, "refused"), (false, "refused")],
                &[None, Some(Down)],
            ),
            (
                "the same detail while down is not sent again",
                &[(false, "refused"), (false, "refused"), (false, "refused")],
                &[None, Some(Down), None],
            ),
            (
                "a new detail while down is sent, once",
                &[
                    (false, "refused"),
                    (false, "refused"),
                    (false, "certificate"),
                    (false, "certificate"),
                ],
                &[None, Some(Down), Some(Down), None],
            ),
            (
                "one failure while up (short of fall) says nothing",
                &[
                    (true, "HTTP 200"),
                    (true, "HTTP 200"),
                    (false, "timeout"),
                    (true, "HTTP 200"),
                ],
                &[None, Some(Up), None, None],
            ),
            (
                "one success while down (short of rise) says nothing",
                &[
                    (false, "refused"),
                    (false, "refused"),
                    (true, "HTTP 200"),
                    (false, "refused"),
                ],
                &[None, Some(Down), None, None],
            ),
        ];
        for (case, runs, want) in rows {
            let mut r = Reporter::new(2, 2);
            let got: Vec<Option<Health>> = runs.iter().map(|(ok, d)| r.record(*ok, d)).collect();
            assert_eq!(&got, want, "{case}");
        }
    }

    #[test]
    fn rise_fall_table() {
        // (rise, fall, results as '+'/'-', health after each result)
        let cases: [(u32, u32, &str, &[Health]); 9] = [
            (2, 2, "", &[]),
            (2, 2, "+", &[Unknown]),
            (2, 2, "++", &[Unknown, Up]),
            (2, 2, "--", &[Unknown, Down]),
            (2, 3, "++--+--", &[Unknown, Up, Up, Up, Up, Up, Up]),
            (2, 3, "++---", &[Unknown, Up, Up, Up, Down]),
            (
                3,
                1,
                "-+-++-+++",
                &[Down, Down, Down, Down, Down, Down, Down, Down, Up],
            ),
            (1, 1, "+-+-", &[Up, Down, Up, Down]),
            // Zero is treated as one: a single result decides.
            (0, 0, "+-", &[Up, Down]),
        ];
        for (rise, fall, results, want) in cases {
            let mut rf = RiseFall::new(rise, fall);
            let got: Vec<Health> = results
                .chars()
                .map(|c| {
                    rf.record(c == '+');
                    rf.health()
                })
                .collect();
            assert_eq!(got, want, "rise {rise} fall {fall} results {results:?}");
        }
    }

    #[test]
    fn record_reports_only_edges() {
        let mut rf = RiseFall::new(1, 2);
        assert_eq!(rf.record(true), Some(Up));
        assert_eq!(rf.record(true), None);
        assert_eq!(rf.record(false), None);
        assert_eq!(rf.record(false), Some(Down));
        assert_eq!(rf.record(false), None);
    }
}
