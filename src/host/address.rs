//! Adds and removes the private IPs of `manage_address = true` VIPs on
//! this host's interfaces, through rtnetlink (the rtnetlink crate; the
//! privilege is CAP_NET_ADMIN). It only acts: the address rules
//! (`core::address`) decide, in the owner task, and each change's end
//! comes back as a `CloudEvent::AddressDone`. Whether the address is on
//! the host is never taken from here: the host's addresses, listed again
//! on the kernel's notification, say so.
//!
//! Both changes are idempotent: adding an address that is there replaces
//! it, removing one that is gone is done.

use futures_util::TryStreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span};

use crate::core::address::Change;
use crate::core::input::Event;
use crate::core::message::{AddressJob, CloudEvent};

/// Why a change failed, in words that name what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("no interface named {0:?} on this host")]
    NoInterface(String),
    #[error(
        "the kernel refused: {0} (adding and removing addresses needs CAP_NET_ADMIN; see docs/peer.md)"
    )]
    Refused(String),
    #[error("cannot open a netlink socket: {0}")]
    Socket(String),
}

/// EADDRNOTAVAIL: removing an address that is not there.
const EADDRNOTAVAIL: i32 = 99;

async fn apply(handle: &rtnetlink::Handle, job: &AddressJob) -> Result<(), AddressError> {
    let refused = |e: rtnetlink::Error| AddressError::Refused(e.to_string());
    let link = handle
        .link()
        .get()
        .match_name(job.interface.clone())
        .execute()
        .try_next()
        .await
        .map_err(|e| match e {
            // The kernel answers ENODEV for an unknown name.
            rtnetlink::Error::NetlinkError(ref m) if m.raw_code() == -19 => {
                AddressError::NoInterface(job.interface.clone())
            }
            e => refused(e),
        })?
        .ok_or_else(|| AddressError::NoInterface(job.interface.clone()))?;
    let index = link.header.index;
    let prefix = if job.ip.is_ipv4() { 32 } else { 128 };
    match job.change {
        Change::Add => handle
            .address()
            .add(index, job.ip, prefix)
            .replace()
            .execute()
            .await
            .map_err(refused),
        Change::Remove => {
            // Whatever prefix it carries (ours is a host prefix; one added
            // by hand may not be): the address is the watchdog's to manage.
            let mut found = handle
                .address()
                .get()
                .set_link_index_filter(index)
                .set_address_filter(job.ip)
                .execute();
            let mut held = vec![];
            while let Some(message) = found.try_next().await.map_err(refused)? {
                held.push(message);
            }
            for message in held {
                match handle.address().del(message).execute().await {
                    Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -EADDRNOTAVAIL => {}
                    r => r.map_err(refused)?,
                }
            }
            Ok(())
        }
    }
}

/// Runs the changes `jobs` hands over, one at a time, until `cancel`.
pub async fn run(
    mut jobs: mpsc::Receiver<AddressJob>,
    done: mpsc::Sender<Event>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    async move {
        let handle = match rtnetlink::new_connection() {
            Ok((connection, handle, _)) => {
                tokio::spawn(connection);
                Ok(handle)
            }
            Err(e) => Err(AddressError::Socket(e.to_string())),
        };
        loop {
            let job = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                job = jobs.recv() => match job {
                    Some(j) => j,
                    None => return Ok(()),
                },
            };
            let result = match &handle {
                Ok(h) => apply(h, &job).await,
                Err(e) => Err(AddressError::Socket(e.to_string())),
            };
            let event = CloudEvent::AddressDone {
                vip: job.vip,
                change: job.change,
                error: result.err().map(|e| e.to_string()),
            };
            if done.send(event.into()).await.is_err() {
                return Ok(());
            }
        }
    }
    .instrument(info_span!("addresses"))
    .await
}
