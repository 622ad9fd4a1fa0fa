//! User, department and signature commands of the buddy-list service
//! (docs/compatibility.md#users-and-departments, docs/compatibility.md#changed-users, docs/compatibility.md#signature-change).

use std::sync::atomic::Ordering;

use dbproxy_protocol::pb::im::base_define::DepartInfo;
use dbproxy_protocol::pb::im::buddy::{
    ImAllUserReq, ImAllUserRsp, ImChangeSignInfoReq, ImChangeSignInfoRsp, ImDepartmentReq,
    ImDepartmentRsp, ImUsersInfoReq, ImUsersInfoRsp,
};

use dbproxy_protocol::cmd;

use crate::command::{attach, now, Handle};
use crate::login::user_info;
use crate::{Ctx, Error};

/// Longest signature accepted, in bytes (docs/compatibility.md#signature-change).
const MAX_SIGN_INFO_BYTES: usize = 128;

/// CID_BUDDY_LIST_USER_INFO_REQUEST (0x0204): users by id, ascending, unknown ids vanish.
impl Handle for cmd::UsersInfo {
    async fn run(ctx: &Ctx, req: ImUsersInfoReq) -> Result<Option<ImUsersInfoRsp>, Error> {
        let users = ctx.store.users().by_ids(&req.user_id_list).await?;
        Ok(Some(ImUsersInfoRsp {
            user_id: req.user_id,
            user_info_list: users.iter().map(user_info).collect(),
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImUsersInfoReq) -> Option<ImUsersInfoRsp> {
        Some(ImUsersInfoRsp {
            user_id: req.user_id,
            user_info_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_BUDDY_LIST_ALL_USER_REQUEST (0x0208): users changed since `latest_update_time`.
///
/// Q-Y02 fixed the way the spec calls "closest to the original": the query runs when the
/// process's own gate (start time / last signature change) or MAX(IMUser.updated) is later
/// than the client's time, so admin-console edits are no longer invisible.
impl Handle for cmd::ChangedUsers {
    async fn run(ctx: &Ctx, req: ImAllUserReq) -> Result<Option<ImAllUserRsp>, Error> {
        let since = req.latest_update_time;
        let users = ctx.store.users();
        let open = ctx.user_update_gate.load(Ordering::Relaxed) > since
            || users.max_updated().await? > since;
        let mut latest = since;
        let mut list = Vec::new();
        if open {
            let changed = users.changed_since(since).await?;
            latest = changed.iter().map(|u| u.updated).fold(since, u32::max);
            list = changed.iter().map(user_info).collect();
        }
        Ok(Some(ImAllUserRsp {
            user_id: req.user_id,
            latest_update_time: latest,
            user_list: list,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImAllUserReq) -> Option<ImAllUserRsp> {
        Some(ImAllUserRsp {
            user_id: req.user_id,
            latest_update_time: req.latest_update_time,
            user_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_BUDDY_LIST_DEPARTMENT_REQUEST (0x0210): departments with `updated > T`.
impl Handle for cmd::Departments {
    async fn run(ctx: &Ctx, req: ImDepartmentReq) -> Result<Option<ImDepartmentRsp>, Error> {
        let departs = ctx
            .store
            .departments()
            .changed_since(req.latest_update_time)
            .await?;
        let latest = departs
            .iter()
            .map(|d| d.updated)
            .fold(req.latest_update_time, u32::max);
        let dept_list = departs
            .into_iter()
            .filter(|d| d.status <= 1)
            .map(|d| DepartInfo {
                dept_id: d.id,
                priority: d.priority,
                dept_name: d.name,
                parent_dept_id: d.parent_id,
                dept_status: d.status as i32,
            })
            .collect();
        Ok(Some(ImDepartmentRsp {
            user_id: req.user_id,
            latest_update_time: latest,
            dept_list,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImDepartmentReq) -> Option<ImDepartmentRsp> {
        Some(ImDepartmentRsp {
            user_id: req.user_id,
            latest_update_time: req.latest_update_time,
            dept_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST (0x0213): set IMUser.sign_info (bound, Q-S02).
impl Handle for cmd::ChangeSignInfo {
    async fn run(
        ctx: &Ctx,
        req: ImChangeSignInfoReq,
    ) -> Result<Option<ImChangeSignInfoRsp>, Error> {
        if req.sign_info.len() > MAX_SIGN_INFO_BYTES {
            return Ok(Self::failed(&req));
        }
        let Ok(sign_info) = std::str::from_utf8(&req.sign_info) else {
            tracing::warn!(user = req.user_id, "signature is not UTF-8; refused");
            return Ok(Self::failed(&req));
        };
        let now = now();
        let found = ctx
            .store
            .users()
            .set_sign_info(req.user_id, sign_info, now)
            .await?;
        if !found {
            return Ok(Self::failed(&req));
        }
        ctx.user_update_gate.fetch_max(now, Ordering::Relaxed);
        // Informational for operators (Q-Y01); a Redis hiccup must not fail the reply.
        if let Err(error) = ctx.store.sync_state().set_total_user_update(now).await {
            tracing::warn!(%error, "could not record total_user_update");
        }
        Ok(Some(ImChangeSignInfoRsp {
            user_id: req.user_id,
            result_code: 0,
            sign_info: Some(sign_info.to_owned()),
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImChangeSignInfoReq) -> Option<ImChangeSignInfoRsp> {
        Some(ImChangeSignInfoRsp {
            user_id: req.user_id,
            result_code: 1,
            sign_info: None,
            attach_data: attach(&req.attach_data),
        })
    }
}
