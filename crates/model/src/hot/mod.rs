//! The coalesced hot paths, composed from the repositories and [`crate::batch`]: concurrent
//! calls of one kind share one round of statements. [`HotPaths`] starts every coalescer;
//! it is the only place that wires them.

mod groups_of_user;
mod login;
mod newest;
mod pages;
pub(crate) mod relation_ids;
mod send_lookup;
mod store_single;

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::batch::texts::MAX_BATCH;
use crate::batch::timing::Timings;
use crate::batch::{Coalescer, Shape};
use crate::config::{Batching, StoreConfig};
use crate::db::Pools;
use crate::error::Result;
use crate::redis::Cache;
use crate::repo::message::{NewSingleMessage, OutgoingSingle, Sent, SingleMessage};
use crate::repo::session::SendLookup;
use crate::repo::user::User;
use newest::{NewestLists, NewestReq};
use pages::PageReq;
use relation_ids::RelationIds;
use store_single::OwnedSingle;

/// Shape of a read coalescer.
fn reads(b: &Batching) -> Shape {
    shape(b.max_batch, b.read_slots)
}

/// Shape of the send lookup: read slots, write batch size.
fn send_reads(b: &Batching) -> Shape {
    shape(b.write_max_batch, b.read_slots)
}

/// Shape of the message-write coalescer.
fn writes(b: &Batching) -> Shape {
    shape(b.write_max_batch, b.write_slots)
}

fn shape(max_batch: usize, slots: usize) -> Shape {
    Shape {
        max_batch: max_batch.clamp(1, MAX_BATCH),
        parallel: slots.max(1),
        capacity: 1024,
        gate: None,
    }
}

/// The request coalescers of the hot paths and the relation ids they remember.
pub(crate) struct HotPaths {
    login: Coalescer<String, Option<User>>,
    send_lookup: Coalescer<(u32, u32), SendLookup>,
    store_single: Coalescer<OwnedSingle, Sent>,
    groups_of_user: Coalescer<u32, Vec<u32>>,
    newest: Coalescer<NewestReq, NewestLists>,
    list_single: Coalescer<PageReq, Vec<SingleMessage>>,
    relation_ids: Arc<RelationIds>,
}

impl HotPaths {
    /// Start every coalescer ([`Batching`]) as tasks on the current tokio runtime. Their
    /// stages are timed in `timings`.
    pub(crate) fn start(
        cfg: &StoreConfig,
        pools: &Pools,
        unread: &Cache,
        timings: &Timings,
    ) -> HotPaths {
        // One batch gate per pool (one permit per connection), shared by the coalescers
        // using that pool (see `batch::Shape::gate`).
        let master_gate = Arc::new(Semaphore::new(cfg.master.max_connections.max(1)));
        let slave_gate = if cfg.slave == cfg.master {
            master_gate.clone()
        } else {
            Arc::new(Semaphore::new(cfg.slave.max_connections.max(1)))
        };
        let slave_reads = reads(&cfg.batch).gated(&slave_gate);
        let send_reads = send_reads(&cfg.batch).gated(&master_gate);
        let writes = writes(&cfg.batch).gated(&master_gate);
        let relation_ids = Arc::new(RelationIds::new(cfg.relation_ids_ttl));
        HotPaths {
            login: login::coalescer(pools.clone(), slave_reads.clone(), timings),
            send_lookup: send_lookup::coalescer(
                pools.clone(),
                send_reads,
                relation_ids.clone(),
                timings,
            ),
            store_single: store_single::coalescer(
                pools.clone(),
                unread.clone(),
                writes,
                timings,
                cfg.timeouts.outcome_check,
            ),
            groups_of_user: groups_of_user::coalescer(pools.clone(), slave_reads.clone(), timings),
            newest: newest::coalescer(
                pools.clone(),
                slave_reads.clone(),
                relation_ids.clone(),
                timings,
            ),
            list_single: pages::coalescer(
                pools.clone(),
                slave_reads,
                relation_ids.clone(),
                timings,
            ),
            relation_ids,
        }
    }

    /// The active account named `name` (see `Users::find_for_login`).
    pub(crate) async fn login(&self, name: String) -> Result<Option<User>> {
        self.login.call(name).await
    }

    /// The sessions and relation of a single send (see `Sessions::single_send_lookup`).
    pub(crate) async fn send_lookup(&self, from: u32, to: u32) -> Result<SendLookup> {
        self.send_lookup.call((from, to)).await
    }

    /// Store a single message that has its msgId (see `Messages::store_single`).
    pub(crate) async fn store_single(
        &self,
        m: &NewSingleMessage<'_>,
        sessions: &[u32],
        session_time: u32,
    ) -> Result<Sent> {
        let unsent = OutgoingSingle {
            relate_id: m.relate_id,
            from_id: m.from_id,
            to_id: m.to_id,
            content: m.content,
            kind: m.kind,
            created: m.created,
        };
        let job = OwnedSingle::new(&unsent, Some(m.msg_id), sessions, session_time);
        self.store_single.call(job).await
    }

    /// Send a single message: allocate its msgId, store it, count it as unread (see
    /// `Messages::send_single`).
    pub(crate) async fn send_single(
        &self,
        m: &OutgoingSingle<'_>,
        sessions: &[u32],
        session_time: u32,
    ) -> Result<Sent> {
        let job = OwnedSingle::new(m, None, sessions, session_time);
        self.store_single.call(job).await
    }

    /// The groups of `user` (see `Groups::group_ids_of_user`).
    pub(crate) async fn groups_of_user(&self, user: u32) -> Result<Vec<u32>> {
        self.groups_of_user.call(user).await
    }

    /// Newest messages of conversations (see `Messages::newest_many`).
    pub(crate) async fn newest(
        &self,
        user: u32,
        peers: &[u32],
        groups: &[u32],
    ) -> Result<NewestLists> {
        let req = NewestReq {
            user,
            peers: peers.to_vec(),
            groups: groups.to_vec(),
        };
        self.newest.call(req).await
    }

    /// A message page of a pair (see `Messages::list_single_between`).
    pub(crate) async fn list_single(
        &self,
        a: u32,
        b: u32,
        begin: u32,
        count: u32,
    ) -> Result<Vec<SingleMessage>> {
        self.list_single.call(PageReq { a, b, begin, count }).await
    }

    /// The remembered relation ids.
    pub(crate) fn relation_ids(&self) -> &RelationIds {
        &self.relation_ids
    }
}
