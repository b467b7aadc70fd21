//! A service's endpoints as a tower `Discover` stream, so any tower
//! balancer can spread calls over them.
//!
//! Each endpoint comes gated by its breaker ([`BreakerGate`]): a balancer
//! such as `tower::balance::p2c::Balance` sees an open instance as not
//! ready and routes around it. Beacon's own [`Balance`](super::Balance)
//! reads the shared view directly instead (no per-endpoint service to poll
//! per call); this stream is for composing Beacon's discovery and breakers
//! with other tower parts.

use super::{gate, BreakerGate, NewEndpointService};
use crate::resolver::ServiceView;
use crate::wire::Address;
use futures_util::Stream;
use std::{
    collections::{HashSet, VecDeque},
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};
use tower::discover::Change;

/// The changes of one service's instance list, from its view: an
/// `Insert` per instance listed, a `Remove` per instance gone, keyed by
/// address. Never ends while the view lives.
pub struct ViewDiscover<N: NewEndpointService> {
    view: Arc<ServiceView>,
    new_service: N,
    /// Addresses already announced.
    known: HashSet<Address>,
    /// Changes found but not yet yielded.
    pending: VecDeque<Change<Address, BreakerGate<N::Service>>>,
    wait: Option<gate::ChangeWait>,
}

impl<N: NewEndpointService> ViewDiscover<N> {
    /// The instances of `view`, each reached through the service
    /// `new_service` makes for it, behind its breaker.
    pub fn new(view: Arc<ServiceView>, new_service: N) -> Self {
        Self {
            view,
            new_service,
            known: HashSet::new(),
            pending: VecDeque::new(),
            wait: None,
        }
    }

    /// Queues what changed since the last look.
    fn diff(&mut self) {
        let current = self.view.endpoints();
        let listed: HashSet<&Address> = current.iter().map(|e| e.address()).collect();
        let gone: Vec<Address> = self
            .known
            .iter()
            .filter(|a| !listed.contains(a))
            .cloned()
            .collect();
        for address in gone {
            self.known.remove(&address);
            self.pending.push_back(Change::Remove(address));
        }
        for endpoint in current.iter() {
            if self.known.insert(endpoint.address().clone()) {
                let service = self.new_service.new_service(Arc::clone(endpoint));
                self.pending.push_back(Change::Insert(
                    endpoint.address().clone(),
                    BreakerGate::new(Arc::clone(endpoint), service),
                ));
            }
        }
    }
}

impl<N: NewEndpointService> std::fmt::Debug for ViewDiscover<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewDiscover")
            .field("service", self.view.service())
            .field("known", &self.known.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

// Nothing in it is ever pinned in place: the stream is polled through
// `&mut`, so it may move freely whatever `N` is.
impl<N: NewEndpointService> Unpin for ViewDiscover<N> {}

impl<N: NewEndpointService> Stream for ViewDiscover<N> {
    type Item = Result<Change<Address, BreakerGate<N::Service>>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(change) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(change)));
            }
            this.diff();
            if !this.pending.is_empty() {
                continue;
            }
            let view = &this.view;
            ready!(gate::poll_change(&mut this.wait, || view.changes(), cx));
        }
    }
}
