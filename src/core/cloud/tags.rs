//! The cloud side's part of state tags (claim rule 14): reading the
//! holder's tag from each view, and what the rule held back.

use std::time::Duration;

use super::{CloudState, Note};
use crate::core::clock::Stamp;
use crate::core::decide::Rules;
use crate::core::seen::Seen;
use crate::core::state_tag;
use crate::core::vip::VipConfig;
use crate::core::words::Holder;

/// Reads the tag of `vip`'s holder `h` in `seen`, asked for at `sent`, into
/// the rules; a note when what it says changed.
pub(super) fn read(
    rules: &mut Rules,
    vip: &VipConfig,
    seen: &Seen,
    h: &Holder,
    sent: Stamp,
    counts_for: Duration,
) -> Option<Note> {
    let value = state_tag::holder_tag(&vip.target, &vip.vrrp_instance, seen, h);
    let reading = value.map(|v| state_tag::read(v, sent, counts_for));
    let before = rules.vips.get(&vip.name).and_then(|s| s.holder_tag.clone());
    let note =
        (!state_tag::same_reading(before.as_ref(), reading.as_ref())).then(|| Note::HolderTag {
            vip: vip.name.clone(),
            value: value.map(str::to_owned),
            reading: reading.clone(),
        });
    rules.holder_tag_seen(&vip.name, reading);
    note
}

impl CloudState {
    /// Rule 14 reads the holder's state tag, which counts for `counts_for`.
    pub fn with_state_tags(mut self, counts_for: Duration) -> Self {
        self.state_tag_for = Some(counts_for);
        self.rules.state_tags = true;
        self
    }

    /// State tags are on.
    pub fn state_tags_on(&self) -> bool {
        self.state_tag_for.is_some()
    }

    /// Rule 14 holds back this MASTER's take-back of `vip` now: the split
    /// brain seen in the cloud.
    pub fn split_in_cloud(&self, vip: &str) -> bool {
        self.rules.vips.get(vip).is_some_and(|s| s.split_in_cloud)
    }

    /// With state tags on, each VIP and whether claim rule 14 held this
    /// MASTER's take-back at the last step.
    pub fn splits_in_cloud(&self) -> impl Iterator<Item = (&str, bool)> {
        self.vips
            .iter()
            .filter(|_| self.state_tags_on())
            .map(|v| (v.name.as_str(), self.split_in_cloud(&v.name)))
    }
}
