//! Request choice per mode and execution against the proxy (protocol `Client`) or straight
//! against the backends (`--direct`), with the success checks of each workload.

use std::sync::Arc;

use bytes::Bytes;
use dbproxy_model::{unix_now, Store};
use dbproxy_protocol::pb::im::base_define::{GroupVersionInfo, MsgType, SessionType};
use dbproxy_protocol::pb::im::buddy::{ImRecentContactSessionReq, ImRecentContactSessionRsp};
use dbproxy_protocol::pb::im::group::{
    ImGroupInfoListReq, ImGroupInfoListRsp, ImNormalGroupListReq, ImNormalGroupListRsp,
};
use dbproxy_protocol::pb::im::message::{
    ImGetMsgByIdReq, ImGetMsgByIdRsp, ImGetMsgListReq, ImGetMsgListRsp, ImMsgData,
    ImMsgDataReadAck, ImUnreadMsgCntReq, ImUnreadMsgCntRsp,
};
use dbproxy_protocol::pb::im::server::{ImValidateReq, ImValidateRsp};
use dbproxy_protocol::{cid, Client};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;

use super::direct;
use super::options::Mode;
use super::prepare::{Population, FETCH_COUNT};
use super::stats::Failure;

/// md5hex("123456"): what msg_server sends as the password.
pub const CLIENT_PASSWORD_MD5: &str = "e10adc3949ba59abbe56e057f20f883e";
/// A msg_server-style "handle" attach (type 1, handle 5, service type 0), echoed by replies.
pub const ATTACH: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0];
const TEXT: &[u8] = b"bench: hello, this is a short single-chat text message";

/// One request to issue.
#[derive(Debug, Clone)]
pub enum Op {
    Login { name: String },
    Send { from: u32, to: u32 },
    Fetch { user: u32, peer: u32 },
    Unread { user: u32 },
    Sessions { user: u32 },
    GroupList { user: u32, groups: usize },
    GroupInfo { user: u32, groups: Vec<u32> },
    ByIds { user: u32, peer: u32, ids: Vec<u32> },
    ReadUnread { user: u32, peer: u32, msg_id: u32 },
}

/// Groups asked for by one group-info request, and msgIds by one by-ids request.
pub const GROUP_INFO_COUNT: usize = 20;
pub const BY_IDS_COUNT: usize = 20;

/// Picks requests for a mode from the prepared population.
pub struct Workload {
    mode: Mode,
    pop: Arc<Population>,
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        items.get(rng.random_range(0..items.len())).copied()
    }
}

impl Workload {
    /// Fails when the population lacks what the mode needs.
    pub fn new(mode: Mode, pop: Arc<Population>) -> crate::common::Result<Workload> {
        if pop.users.is_empty() {
            return Err("no seeded users".into());
        }
        let needs_pairs = matches!(mode, Mode::Send | Mode::Mix);
        let needs_fetch = matches!(mode, Mode::Fetch | Mode::Mix);
        if (needs_pairs && pop.pairs.is_empty()) || (needs_fetch && pop.fetch_pairs.is_empty()) {
            return Err(format!("mode {mode}: preparation produced no conversations").into());
        }
        let empty = match mode {
            Mode::GroupList | Mode::GroupInfo => pop.groups.iter().all(Vec::is_empty),
            Mode::ByIds => pop.histories.is_empty(),
            Mode::ReadUnread => pop.pairs.is_empty(),
            _ => false,
        };
        if empty {
            return Err(format!(
                "mode {mode} reads groups or long conversations: run it on a built population \
                 (cargo xtask populate, then bench --population DATABASE)"
            )
            .into());
        }
        Ok(Workload { mode, pop })
    }

    /// The next request.
    pub fn next(&self, rng: &mut StdRng) -> Op {
        let kind = match self.mode {
            Mode::Mix => match rng.random_range(0..100u32) {
                0..60 => Mode::Send,
                60..90 => Mode::Fetch,
                _ => Mode::Unread,
            },
            m => m,
        };
        let swap = rng.random_bool(0.5);
        let orient = |(a, b): (u32, u32)| if swap { (b, a) } else { (a, b) };
        let index = rng.random_range(0..self.pop.users.len());
        let user = &self.pop.users[index];
        let groups = self.pop.groups.get(index).map_or(&[][..], Vec::as_slice);
        match kind {
            Mode::Sessions => Op::Sessions { user: user.id },
            Mode::GroupList => Op::GroupList {
                user: user.id,
                groups: groups.len(),
            },
            Mode::GroupInfo => Op::GroupInfo {
                user: user.id,
                groups: groups
                    .choose_multiple(rng, GROUP_INFO_COUNT)
                    .copied()
                    .collect(),
            },
            Mode::ByIds => match pick(rng, &self.pop.histories) {
                Some((user, peer, n)) => {
                    let ids =
                        rand::seq::index::sample(rng, n as usize, BY_IDS_COUNT.min(n as usize))
                            .into_iter()
                            .map(|i| i as u32 + 1)
                            .collect();
                    Op::ByIds { user, peer, ids }
                }
                None => Op::Unread { user: user.id },
            },
            Mode::ReadUnread => match pick(rng, &self.pop.pairs) {
                Some((user, peer)) => Op::ReadUnread {
                    user,
                    peer,
                    msg_id: 1,
                },
                None => Op::Unread { user: user.id },
            },
            Mode::Send => match pick(rng, &self.pop.pairs).map(orient) {
                Some((from, to)) => Op::Send { from, to },
                None => Op::Unread { user: user.id },
            },
            Mode::Fetch => match pick(rng, &self.pop.fetch_pairs).map(orient) {
                Some((user, peer)) => Op::Fetch { user, peer },
                None => Op::Unread { user: user.id },
            },
            Mode::Unread => Op::Unread { user: user.id },
            Mode::Login | Mode::Ceiling | Mode::Mix => Op::Login {
                name: user.name.clone(),
            },
        }
    }
}

/// A failed request: kind and detail.
pub type Fail = (Failure, String);

fn classify(e: dbproxy_protocol::Error) -> Fail {
    use dbproxy_protocol::Error as E;
    let kind = match &e {
        E::Timeout { .. } => Failure::Timeout,
        E::ConnectionClosed | E::Io(_) => Failure::Closed,
        _ => Failure::WrongReply,
    };
    (kind, e.to_string())
}

fn attach() -> Option<Bytes> {
    Some(Bytes::from_static(ATTACH))
}

/// Where requests go.
pub enum Target {
    /// One client per connection; worker `i` uses connection `i / depth`.
    Proxy { clients: Vec<Client>, depth: usize },
    /// The model crate in-process.
    Direct(Store),
}

impl Target {
    /// Issues `op` and checks the reply.
    pub async fn exec(&self, worker: usize, op: &Op) -> Result<(), Fail> {
        match self {
            Target::Proxy { clients, depth } => {
                let client = clients
                    .get(worker / (*depth).max(1))
                    .ok_or((Failure::Closed, "no connection for worker".to_owned()))?;
                proxy(client, op).await
            }
            Target::Direct(store) => backend(store, op).await,
        }
    }
}

async fn proxy(c: &Client, op: &Op) -> Result<(), Fail> {
    match op {
        Op::Login { name } => {
            let req = ImValidateReq {
                user_name: name.clone(),
                password: CLIENT_PASSWORD_MD5.to_owned(),
                attach_data: attach(),
            };
            let rsp: ImValidateRsp = c
                .call_decode(cid::OTHER_VALIDATE_REQ, &req)
                .await
                .map_err(classify)?;
            if rsp.result_code != 0 {
                return Err((
                    Failure::BadResult,
                    format!("login {name}: result_code {}", rsp.result_code),
                ));
            }
        }
        Op::Send { from, to } => {
            let req = ImMsgData {
                from_user_id: *from,
                to_session_id: *to,
                msg_id: 0,
                create_time: unix_now(),
                msg_type: MsgType::SingleText as i32,
                msg_data: Bytes::from_static(TEXT),
                attach_data: attach(),
            };
            let rsp: ImMsgData = c.call_decode(cid::MSG_DATA, &req).await.map_err(classify)?;
            if rsp.msg_id == 0 {
                return Err((Failure::BadResult, format!("send {from}->{to}: msg_id 0")));
            }
        }
        Op::Fetch { user, peer } => {
            let req = ImGetMsgListReq {
                user_id: *user,
                session_type: SessionType::Single as i32,
                session_id: *peer,
                msg_id_begin: 0,
                msg_cnt: FETCH_COUNT,
                attach_data: attach(),
            };
            let rsp: ImGetMsgListRsp = c
                .call_decode(cid::MSG_LIST_REQUEST, &req)
                .await
                .map_err(classify)?;
            if rsp.msg_list.len() < FETCH_COUNT as usize {
                return Err((
                    Failure::BadResult,
                    format!("fetch {user}/{peer}: {} messages", rsp.msg_list.len()),
                ));
            }
        }
        Op::Unread { user } => unread(c, *user).await?,
        Op::Sessions { user } => {
            let req = ImRecentContactSessionReq {
                user_id: *user,
                latest_update_time: 0,
                attach_data: attach(),
            };
            let rsp: ImRecentContactSessionRsp = c
                .call_decode(cid::BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST, &req)
                .await
                .map_err(classify)?;
            if rsp.contact_session_list.is_empty() {
                return Err((Failure::BadResult, format!("sessions {user}: none")));
            }
        }
        Op::GroupList { user, groups } => {
            let req = ImNormalGroupListReq {
                user_id: *user,
                attach_data: attach(),
            };
            let rsp: ImNormalGroupListRsp = c
                .call_decode(cid::GROUP_NORMAL_LIST_REQUEST, &req)
                .await
                .map_err(classify)?;
            if rsp.group_version_list.len() < *groups {
                return Err((
                    Failure::BadResult,
                    format!(
                        "group list {user}: {} of {groups}",
                        rsp.group_version_list.len()
                    ),
                ));
            }
        }
        Op::GroupInfo { user, groups } => {
            let req = ImGroupInfoListReq {
                user_id: *user,
                group_version_list: groups
                    .iter()
                    .map(|&group_id| GroupVersionInfo {
                        group_id,
                        version: 0,
                    })
                    .collect(),
                attach_data: attach(),
            };
            let rsp: ImGroupInfoListRsp = c
                .call_decode(cid::GROUP_INFO_REQUEST, &req)
                .await
                .map_err(classify)?;
            if rsp.group_info_list.len() != groups.len() {
                return Err((
                    Failure::BadResult,
                    format!(
                        "group info {user}: {} of {}",
                        rsp.group_info_list.len(),
                        groups.len()
                    ),
                ));
            }
        }
        Op::ByIds { user, peer, ids } => {
            let req = ImGetMsgByIdReq {
                user_id: *user,
                session_type: SessionType::Single as i32,
                session_id: *peer,
                msg_id_list: ids.clone(),
                attach_data: attach(),
            };
            let rsp: ImGetMsgByIdRsp = c
                .call_decode(cid::MSG_GET_BY_MSG_ID_REQ, &req)
                .await
                .map_err(classify)?;
            if rsp.msg_list.len() != ids.len() {
                return Err((
                    Failure::BadResult,
                    format!(
                        "by ids {user}/{peer}: {} of {}",
                        rsp.msg_list.len(),
                        ids.len()
                    ),
                ));
            }
        }
        Op::ReadUnread { user, peer, msg_id } => {
            let ack = ImMsgDataReadAck {
                user_id: *user,
                session_id: *peer,
                msg_id: *msg_id,
                session_type: SessionType::Single as i32,
            };
            c.send(cid::MSG_READ_ACK, &ack).await.map_err(classify)?;
            unread(c, *user).await?;
        }
    }
    Ok(())
}

async fn unread(c: &Client, user: u32) -> Result<(), Fail> {
    let req = ImUnreadMsgCntReq {
        user_id: user,
        attach_data: attach(),
    };
    let _: ImUnreadMsgCntRsp = c
        .call_decode(cid::MSG_UNREAD_CNT_REQUEST, &req)
        .await
        .map_err(classify)?;
    Ok(())
}

async fn backend(store: &Store, op: &Op) -> Result<(), Fail> {
    let backend_err = |e: dbproxy_model::Error| (Failure::Backend, e.to_string());
    match op {
        Op::Send { from, to } => {
            let id = direct::send_single(store, *from, *to, unix_now(), TEXT)
                .await
                .map_err(backend_err)?;
            if id == 0 {
                return Err((Failure::BadResult, format!("send {from}->{to}: msg_id 0")));
            }
        }
        Op::Fetch { user, peer } => {
            let n = direct::fetch_single(store, *user, *peer, FETCH_COUNT)
                .await
                .map_err(backend_err)?;
            if n < FETCH_COUNT as usize {
                return Err((
                    Failure::BadResult,
                    format!("fetch {user}/{peer}: {n} messages"),
                ));
            }
        }
        Op::Login { name } => {
            if !direct::login(store, name, CLIENT_PASSWORD_MD5)
                .await
                .map_err(backend_err)?
            {
                return Err((Failure::BadResult, format!("login {name}: no match")));
            }
        }
        Op::Unread { user } => {
            direct::unread(store, *user).await.map_err(backend_err)?;
        }
        Op::Sessions { user } => {
            if direct::sessions(store, *user).await.map_err(backend_err)? == 0 {
                return Err((Failure::BadResult, format!("sessions {user}: none")));
            }
        }
        Op::GroupList { user, groups } => {
            let n = direct::group_list(store, *user)
                .await
                .map_err(backend_err)?;
            if n < *groups {
                return Err((
                    Failure::BadResult,
                    format!("group list {user}: {n} of {groups}"),
                ));
            }
        }
        Op::GroupInfo { user, groups } => {
            let n = direct::group_info(store, groups)
                .await
                .map_err(backend_err)?;
            if n != groups.len() {
                return Err((
                    Failure::BadResult,
                    format!("group info {user}: {n} of {}", groups.len()),
                ));
            }
        }
        Op::ByIds { user, peer, ids } => {
            let n = direct::by_ids(store, *user, *peer, ids)
                .await
                .map_err(backend_err)?;
            if n != ids.len() {
                return Err((
                    Failure::BadResult,
                    format!("by ids {user}/{peer}: {n} of {}", ids.len()),
                ));
            }
        }
        Op::ReadUnread { user, peer, .. } => {
            direct::read_unread(store, *user, *peer)
                .await
                .map_err(backend_err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn population() -> Arc<Population> {
        let mut p = super::super::prepare::synthetic(10);
        p.pairs = vec![(1, 2), (3, 4)];
        p.fetch_pairs = vec![(5, 6)];
        Arc::new(p)
    }

    #[test]
    fn mix_is_sixty_thirty_ten() {
        let w = Workload::new(Mode::Mix, population()).expect("workload");
        let mut rng = StdRng::seed_from_u64(7);
        let (mut send, mut fetch, mut unread) = (0u32, 0u32, 0u32);
        let n = 30_000u32;
        for _ in 0..n {
            match w.next(&mut rng) {
                Op::Send { .. } => send += 1,
                Op::Fetch { .. } => fetch += 1,
                Op::Unread { .. } => unread += 1,
                op => panic!("mix issued {op:?}"),
            }
        }
        let share = |k: u32| f64::from(k) / f64::from(n);
        assert!((share(send) - 0.60).abs() < 0.015, "send {}", share(send));
        assert!(
            (share(fetch) - 0.30).abs() < 0.015,
            "fetch {}",
            share(fetch)
        );
        assert!(
            (share(unread) - 0.10).abs() < 0.015,
            "unread {}",
            share(unread)
        );
    }

    #[test]
    fn sends_and_fetches_use_prepared_pairs_in_both_directions() {
        let pop = population();
        let mut rng = StdRng::seed_from_u64(3);
        let sends = Workload::new(Mode::Send, pop.clone()).expect("send workload");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            match sends.next(&mut rng) {
                Op::Send { from, to } => {
                    let pair = (from.min(to), from.max(to));
                    assert!(pop.pairs.contains(&pair), "({from}, {to})");
                    seen.insert((from, to));
                }
                op => panic!("send mode issued {op:?}"),
            }
        }
        assert_eq!(seen.len(), 4, "both directions of both pairs: {seen:?}");
        let fetches = Workload::new(Mode::Fetch, pop).expect("fetch workload");
        for _ in 0..50 {
            match fetches.next(&mut rng) {
                Op::Fetch { user, peer } => {
                    assert!(matches!((user, peer), (5, 6) | (6, 5)), "({user}, {peer})");
                }
                op => panic!("fetch mode issued {op:?}"),
            }
        }
    }

    #[test]
    fn modes_needing_conversations_refuse_a_population_without_them() {
        let bare = Arc::new(super::super::prepare::synthetic(5));
        for mode in [Mode::Send, Mode::Fetch, Mode::Mix] {
            assert!(Workload::new(mode, bare.clone()).is_err(), "{mode}");
        }
        for mode in [Mode::Login, Mode::Unread, Mode::Ceiling] {
            assert!(Workload::new(mode, bare.clone()).is_ok(), "{mode}");
        }
    }
}
