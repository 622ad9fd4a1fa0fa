//! Group commands (docs/compatibility.md#group-commands): normal list, info, create, change
//! members, group push shield set/get.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};

use dbproxy_model::group::{NewGroup, GROUP_TYPE_NORMAL, GROUP_TYPE_TMP};
use dbproxy_model::{session, Db};
use dbproxy_protocol::pb::im::base_define::{
    GroupInfo, GroupModifyType, GroupVersionInfo, ShieldStatus,
};
use dbproxy_protocol::pb::im::group::{
    ImGroupChangeMemberReq, ImGroupChangeMemberRsp, ImGroupCreateReq, ImGroupCreateRsp,
    ImGroupInfoListReq, ImGroupInfoListRsp, ImGroupShieldReq, ImGroupShieldRsp,
    ImNormalGroupListReq, ImNormalGroupListRsp,
};
use dbproxy_protocol::pb::im::server::{ImGroupGetShieldReq, ImGroupGetShieldRsp};

use dbproxy_protocol::cmd;

use crate::command::{attach, now, Handle};
use crate::{Ctx, Error};

/// Backend calls one request keeps in flight at a time where it needs one per group.
const PER_REQUEST_CONCURRENCY: usize = 16;

/// Sorted, de-duplicated copy of a member list.
fn member_set(ids: &[u32]) -> Vec<u32> {
    let mut set = ids.to_vec();
    set.sort_unstable();
    set.dedup();
    set
}

/// CID_GROUP_NORMAL_LIST_REQUEST (0x0401): the user's normal groups with versions.
impl Handle for cmd::GroupList {
    async fn run(
        ctx: &Ctx,
        req: ImNormalGroupListReq,
    ) -> Result<Option<ImNormalGroupListRsp>, Error> {
        let groups = ctx.store.groups();
        let ids = groups.group_ids_of_user(req.user_id).await?;
        let list = groups
            .normal_versions(&ids)
            .await?
            .into_iter()
            .map(|(group_id, version)| GroupVersionInfo { group_id, version })
            .collect();
        Ok(Some(ImNormalGroupListRsp {
            user_id: req.user_id,
            group_version_list: list,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImNormalGroupListReq) -> Option<ImNormalGroupListRsp> {
        Some(ImNormalGroupListRsp {
            user_id: req.user_id,
            group_version_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_GROUP_INFO_REQUEST (0x0403): group details when the caller's version is older.
impl Handle for cmd::GroupInfo {
    async fn run(ctx: &Ctx, req: ImGroupInfoListReq) -> Result<Option<ImGroupInfoListRsp>, Error> {
        let groups = ctx.store.groups();
        // Validity of every requested group, several at a time (one round trip each).
        let asked: Vec<u32> = req.group_version_list.iter().map(|v| v.group_id).collect();
        let valid: Vec<bool> = futures::stream::iter(asked)
            .map(move |g| async move { groups.is_valid(g).await })
            .buffered(PER_REQUEST_CONCURRENCY)
            .try_collect()
            .await?;
        // Duplicates: the last requested version wins.
        let mut requested: BTreeMap<u32, u32> = BTreeMap::new();
        for (v, valid) in req.group_version_list.iter().zip(valid) {
            if valid {
                requested.insert(v.group_id, v.version);
            }
        }
        let ids: Vec<u32> = requested.keys().copied().collect();
        let changed: Vec<_> = groups
            .by_ids(&ids)
            .await?
            .into_iter()
            .filter(|g| {
                let wanted = requested.get(&g.id).copied().unwrap_or(u32::MAX);
                let known_type =
                    g.group_type == GROUP_TYPE_NORMAL || g.group_type == GROUP_TYPE_TMP;
                wanted < g.version && known_type
            })
            .collect();
        let members: Vec<Vec<u32>> =
            futures::stream::iter(changed.iter().map(|g| g.id).collect::<Vec<_>>())
                .map(move |g| async move { groups.members(g).await })
                .buffered(PER_REQUEST_CONCURRENCY)
                .try_collect()
                .await?;
        let list = changed
            .into_iter()
            .zip(members)
            .map(|(g, group_member_list)| GroupInfo {
                group_id: g.id,
                version: g.version,
                group_name: g.name,
                group_avatar: g.avatar,
                group_creator_id: g.creator,
                group_type: g.group_type as i32,
                shield_status: 0,
                group_member_list,
            })
            .collect();
        Ok(Some(ImGroupInfoListRsp {
            user_id: req.user_id,
            group_info_list: list,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImGroupInfoListReq) -> Option<ImGroupInfoListRsp> {
        Some(ImGroupInfoListRsp {
            user_id: req.user_id,
            group_info_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_GROUP_CREATE_REQUEST (0x0405).
impl Handle for cmd::GroupCreate {
    async fn run(ctx: &Ctx, req: ImGroupCreateReq) -> Result<Option<ImGroupCreateRsp>, Error> {
        let set = member_set(&req.member_id_list);
        if req.group_name.is_empty() || set.is_empty() {
            return Ok(Self::failed(&req));
        }
        let (Ok(name), Ok(avatar)) = (
            std::str::from_utf8(&req.group_name),
            std::str::from_utf8(&req.group_avatar),
        ) else {
            tracing::warn!(
                user = req.user_id,
                "group name or avatar is not UTF-8; refused"
            );
            return Ok(Self::failed(&req));
        };
        let new = NewGroup {
            name: name.to_owned(),
            avatar: avatar.to_owned(),
            creator: req.user_id,
            group_type: u32::try_from(req.group_type).unwrap_or(0),
        };
        let group_id = ctx.store.groups().create(&new, &set, now()).await?;
        Ok(Some(ImGroupCreateRsp {
            user_id: req.user_id,
            result_code: 0,
            group_id: Some(group_id),
            group_name: req.group_name,
            user_id_list: set,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImGroupCreateReq) -> Option<ImGroupCreateRsp> {
        Some(ImGroupCreateRsp {
            user_id: req.user_id,
            result_code: 1,
            group_id: None,
            group_name: req.group_name.clone(),
            user_id_list: member_set(&req.member_id_list),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_GROUP_CHANGE_MEMBER_REQUEST (0x0407): add / remove members.
impl Handle for cmd::GroupChangeMembers {
    async fn run(
        ctx: &Ctx,
        req: ImGroupChangeMemberReq,
    ) -> Result<Option<ImGroupChangeMemberRsp>, Error> {
        let store = &ctx.store;
        let groups = store.groups();
        let g = req.group_id;
        // Q-P10 fixed: an invalid group is answered with result 1 instead of silence.
        if !groups.is_valid(g).await? {
            return Ok(Self::failed(&req));
        }
        let add = req.change_type == GroupModifyType::Add as i32;
        let mut set = member_set(&req.member_id_list);
        if req.user_id != 0 {
            let allowed = match groups.creator_and_type(g).await? {
                Some((creator, kind)) => (kind == GROUP_TYPE_TMP && add) || creator == req.user_id,
                None => false,
            };
            if !allowed {
                return Ok(Self::failed(&req));
            }
        }
        // Whether the membership changed: the version is bumped once per effective change,
        // so of concurrent identical requests (through one instance or several) only the
        // one that changed something bumps it.
        let (cur, changed) = if add {
            let existing = groups.members(g).await?;
            set.retain(|u| !existing.contains(u));
            // Only the users this request made members (another may have added some first).
            set = groups.insert_members(g, &set, now()).await?;
            // Q-G04 kept: nothing left to add → result 1.
            if set.is_empty() {
                return Ok(Self::failed(&req));
            }
            (groups.members(g).await?, true)
        } else if set.is_empty() {
            // Q-G05 kept: an empty removal succeeds (and bumps the version).
            (Vec::new(), true)
        } else {
            let removed = groups.remove_members(g, &set).await?;
            // Q-G06 fixed: sessions are removed only after the membership is.
            for &u in &set {
                if let Err(error) = remove_group_session(ctx, u, g).await {
                    tracing::warn!(%error, user = u, group = g, "could not remove group session");
                }
            }
            (groups.members(g).await?, !removed.is_empty())
        };
        if changed {
            groups.bump_version(g).await?;
        }
        for &u in &set {
            // Added members start with nothing unread; removed ones are reset (Q-C05).
            if let Err(error) = store.counters().group_mark_read(u, g).await {
                tracing::warn!(%error, user = u, group = g, "could not reset group counter");
            }
        }
        Ok(Some(ImGroupChangeMemberRsp {
            user_id: req.user_id,
            change_type: req.change_type,
            result_code: 0,
            group_id: g,
            cur_user_id_list: cur,
            chg_user_id_list: set,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImGroupChangeMemberReq) -> Option<ImGroupChangeMemberRsp> {
        Some(ImGroupChangeMemberRsp {
            user_id: req.user_id,
            change_type: req.change_type,
            result_code: 1,
            group_id: req.group_id,
            cur_user_id_list: Vec::new(),
            chg_user_id_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// removeSession(session(user, G, 2, visible)).
async fn remove_group_session(ctx: &Ctx, user: u32, group: u32) -> Result<(), Error> {
    if let Some(id) = ctx
        .store
        .sessions()
        .find(Db::Master, user, group, session::GROUP, false)
        .await?
    {
        ctx.store.sessions().remove(id).await?;
    }
    Ok(())
}

/// CID_GROUP_SHIELD_GROUP_REQUEST (0x0409): set the user's push shield in a group.
impl Handle for cmd::GroupSetShield {
    async fn run(ctx: &Ctx, req: ImGroupShieldReq) -> Result<Option<ImGroupShieldRsp>, Error> {
        let groups = ctx.store.groups();
        // Q-P10 fixed: invalid group → result 1 (the original sent nothing).
        if !groups.is_valid(req.group_id).await?
            || !groups.is_member(req.user_id, req.group_id).await?
        {
            return Ok(Self::failed(&req));
        }
        groups
            .set_push_shield(req.group_id, req.user_id, req.shield_status)
            .await?;
        Ok(Some(ImGroupShieldRsp {
            user_id: req.user_id,
            group_id: req.group_id,
            result_code: 0,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImGroupShieldReq) -> Option<ImGroupShieldRsp> {
        Some(ImGroupShieldRsp {
            user_id: req.user_id,
            group_id: req.group_id,
            result_code: 1,
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_OTHER_GET_SHIELD_REQ (0x0711): push shield of users in a group (msg_server's push
/// path). An invalid group gets no reply (kept, Q-P10).
impl Handle for cmd::GroupGetShield {
    async fn run(
        ctx: &Ctx,
        req: ImGroupGetShieldReq,
    ) -> Result<Option<ImGroupGetShieldRsp>, Error> {
        let groups = ctx.store.groups();
        if !groups.is_valid(req.group_id).await? {
            return Ok(None);
        }
        let list = groups
            .push_shields(req.group_id, &req.user_id)
            .await?
            .into_iter()
            .map(|(user_id, shield_status)| ShieldStatus {
                user_id,
                group_id: req.group_id,
                shield_status,
            })
            .collect();
        Ok(Some(ImGroupGetShieldRsp {
            group_id: req.group_id,
            shield_status_list: list,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImGroupGetShieldReq) -> Option<ImGroupGetShieldRsp> {
        Some(ImGroupGetShieldRsp {
            group_id: req.group_id,
            shield_status_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}
