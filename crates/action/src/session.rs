//! Recent-session commands of the buddy-list service (docs/compatibility.md#recent-session-list, docs/compatibility.md#remove-session).

use dbproxy_model::store::Db;
use dbproxy_protocol::pb::im::base_define::{ContactSessionInfo, SessionType};
use dbproxy_protocol::pb::im::buddy::{
    ImRecentContactSessionReq, ImRecentContactSessionRsp, ImRemoveSessionReq, ImRemoveSessionRsp,
};

use dbproxy_protocol::cmd;

use crate::command::{attach, Handle};
use crate::message::{mark_read, newest_many};
use crate::{Ctx, Error};

/// CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST (0x0201): up to 100 sessions updated
/// after `latest_update_time`, each with its newest message; sessions without one are
/// dropped (Q-M13, Q-M14 fixed).
impl Handle for cmd::RecentSessions {
    async fn run(
        ctx: &Ctx,
        req: ImRecentContactSessionReq,
    ) -> Result<Option<ImRecentContactSessionRsp>, Error> {
        let rows = ctx
            .store
            .sessions()
            .recent(req.user_id, req.latest_update_time)
            .await?;
        let single = SessionType::Single as i32;
        let group = SessionType::Group as i32;
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|r| {
                let kind = i32::from(r.kind);
                kind == single || kind == group
            })
            .collect();
        let peers: Vec<u32> = rows
            .iter()
            .filter(|r| i32::from(r.kind) == single)
            .map(|r| r.peer_id)
            .collect();
        let groups: Vec<u32> = rows
            .iter()
            .filter(|r| i32::from(r.kind) == group)
            .map(|r| r.peer_id)
            .collect();
        let (single_latest, group_latest) = newest_many(ctx, req.user_id, &peers, &groups).await?;
        let mut single_latest = single_latest.into_iter();
        let mut group_latest = group_latest.into_iter();
        let mut list = Vec::with_capacity(rows.len());
        for row in rows {
            let kind = i32::from(row.kind);
            let latest = if kind == single {
                single_latest.next().flatten()
            } else {
                group_latest.next().flatten()
            };
            let Some((msg_id, msg_type, sender, data)) = latest else {
                continue;
            };
            // Q-M06 kept: single sessions report the peer as the newest message's sender.
            let from = if kind == single { row.peer_id } else { sender };
            list.push(ContactSessionInfo {
                session_id: row.peer_id,
                session_type: kind,
                session_status: i32::from(row.status),
                updated_time: row.updated,
                latest_msg_id: msg_id,
                latest_msg_data: data,
                latest_msg_type: i32::from(msg_type),
                latest_msg_from_user_id: from,
            });
        }
        Ok(Some(ImRecentContactSessionRsp {
            user_id: req.user_id,
            contact_session_list: list,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImRecentContactSessionReq) -> Option<ImRecentContactSessionRsp> {
        Some(ImRecentContactSessionRsp {
            user_id: req.user_id,
            contact_session_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_BUDDY_LIST_REMOVE_SESSION_REQ (0x0206): hide a visible session and mark it read.
impl Handle for cmd::RemoveSession {
    async fn run(ctx: &Ctx, req: ImRemoveSessionReq) -> Result<Option<ImRemoveSessionRsp>, Error> {
        let kind = u8::try_from(req.session_type).unwrap_or(0);
        let id = ctx
            .store
            .sessions()
            .find(Db::Master, req.user_id, req.session_id, kind, false)
            .await?;
        let removed = match id {
            Some(id) => ctx.store.sessions().remove(id).await?,
            None => false,
        };
        if removed {
            mark_read(ctx, req.user_id, req.session_id, req.session_type).await?;
        }
        let mut rsp = Self::failed(&req).unwrap_or_default();
        rsp.result_code = if removed { 0 } else { 1 };
        Ok(Some(rsp))
    }

    fn failed(req: &ImRemoveSessionReq) -> Option<ImRemoveSessionRsp> {
        Some(ImRemoveSessionRsp {
            user_id: req.user_id,
            result_code: 1,
            session_type: req.session_type,
            session_id: req.session_id,
            attach_data: attach(&req.attach_data),
        })
    }
}
