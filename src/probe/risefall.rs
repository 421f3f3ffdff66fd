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

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

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
