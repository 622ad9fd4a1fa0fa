//! Message commands (docs/compatibility.md#voice-messages-and-the-aes-placeholder, docs/compatibility.md#sending-a-message, docs/compatibility.md#mark-read, docs/compatibility.md#unread-count-list, docs/compatibility.md#message-history-reads): send, read-ack, unread counts,
//! message lists, latest id and lookup by ids.

use bytes::Bytes;
use dbproxy_model::message::{
    self, GroupMessage, NewGroupMessage, OutgoingSingle, Sent, SingleMessage,
};
use dbproxy_model::session;
use dbproxy_model::store::Db;
use dbproxy_protocol::pb::im::base_define::{MsgInfo, MsgType, SessionType, UnreadInfo};
use dbproxy_protocol::pb::im::message::{
    ImGetLatestMsgIdReq, ImGetLatestMsgIdRsp, ImGetMsgByIdReq, ImGetMsgByIdRsp, ImGetMsgListReq,
    ImGetMsgListRsp, ImMsgData, ImMsgDataReadAck, ImUnreadMsgCntReq, ImUnreadMsgCntRsp,
};

use dbproxy_protocol::cmd;

use crate::command::{attach, now, Handle};
use crate::{voice, Ctx, Error};

const SINGLE_TEXT: u8 = MsgType::SingleText as u8;
const SINGLE_AUDIO: u8 = MsgType::SingleAudio as u8;
const GROUP_TEXT: u8 = MsgType::GroupText as u8;
const GROUP_AUDIO: u8 = MsgType::GroupAudio as u8;

/// Whether a stored `type` is one of the four declared message types.
pub(crate) fn valid_type(kind: u8) -> bool {
    matches!(kind, SINGLE_TEXT | SINGLE_AUDIO | GROUP_TEXT | GROUP_AUDIO)
}

/// Newest message of a conversation as the session and unread lists show it (docs/compatibility.md#newest-message):
/// `(msg_id, type, sender, data)` with voice replaced by the placeholder.
pub(crate) type Latest = (u32, u8, u32, Bytes);

/// [`Latest`] of each single peer and each group of `user`, all read in one model call
/// (one slave connection); `None` when there is none or its stored type is not a declared
/// one (Q-M13/Q-M14: entry dropped). Results follow the input order.
pub(crate) async fn newest_many(
    ctx: &Ctx,
    user: u32,
    peers: &[u32],
    groups: &[u32],
) -> Result<(Vec<Option<Latest>>, Vec<Option<Latest>>), Error> {
    let (singles, group_rows) = ctx
        .store
        .messages()
        .newest_many(user, peers, groups)
        .await?;
    let shape = |found: Option<message::Newest>| {
        found.filter(|m| valid_type(m.kind)).map(|m| {
            let data = if m.kind == SINGLE_AUDIO || m.kind == GROUP_AUDIO {
                ctx.voice_placeholder.clone()
            } else {
                Bytes::from(m.content)
            };
            (m.msg_id, m.kind, m.from_id, data)
        })
    };
    Ok((
        singles.into_iter().map(shape).collect(),
        group_rows.into_iter().map(shape).collect(),
    ))
}

/// clearUserCounter (docs/compatibility.md#mark-read): mark a session read for `user`.
pub(crate) async fn mark_read(
    ctx: &Ctx,
    user: u32,
    peer: u32,
    session_type: i32,
) -> Result<(), Error> {
    if session_type == SessionType::Single as i32 {
        ctx.store.counters().clear_single(user, peer).await?;
    } else if session_type == SessionType::Group as i32 {
        ctx.store.counters().group_mark_read(user, peer).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CID_MSG_DATA

/// What a send stored: the id for the reply (0 = nothing stored).
fn echo(mut req: ImMsgData, msg_id: u32) -> ImMsgData {
    req.msg_id = msg_id;
    req
}

/// CID_MSG_DATA (0x0301): the reply is the request itself with `msg_id` filled in (the
/// protocol crate appends the request's unknown fields, see `encode_reply`).
impl Handle for cmd::SendMessage {
    async fn run(ctx: &Ctx, req: ImMsgData) -> Result<Option<ImMsgData>, Error> {
        if req.msg_data.is_empty() {
            tracing::warn!(
                from = req.from_user_id,
                "message with empty msg_data dropped"
            );
            return Ok(None);
        }
        let now = now();
        let kind = u8::try_from(req.msg_type).unwrap_or(0);
        let id = match kind {
            SINGLE_TEXT | SINGLE_AUDIO => send_single(ctx, &req, kind, now).await?,
            GROUP_TEXT | GROUP_AUDIO => Box::pin(send_group(ctx, &req, kind, now)).await?,
            _ => return Ok(None),
        };
        Ok(Some(echo(req, id)))
    }

    fn failed(req: &ImMsgData) -> Option<ImMsgData> {
        // msg_id 0: msg_server treats it as "write failed" and drops the message.
        Some(echo(req.clone(), 0))
    }
}

/// The payload to store: text verbatim; voice uploaded to msfs and replaced by the
/// IMAudio id. `None` when a voice payload could not be stored (Q-M02: reply msg_id 0).
async fn content_for(ctx: &Ctx, req: &ImMsgData, kind: u8) -> Result<Option<Vec<u8>>, Error> {
    if kind == SINGLE_AUDIO || kind == GROUP_AUDIO {
        // Boxed: the upload's HTTP future is large, and the text path (the common one) should
        // not carry its size in every in-flight request.
        Ok(Box::pin(voice::store(
            ctx,
            req.from_user_id,
            req.to_session_id,
            req.create_time,
            &req.msg_data,
        ))
        .await)
    } else {
        Ok(Some(req.msg_data.to_vec()))
    }
}

async fn send_single(ctx: &Ctx, req: &ImMsgData, kind: u8, now: u32) -> Result<u32, Error> {
    let (from, to) = (req.from_user_id, req.to_session_id);
    if from == to {
        return Ok(0);
    }
    let store = &ctx.store;
    // One master round of reads; the locked create paths only for what is missing.
    let found = store.sessions().single_send_lookup(from, to).await?;
    let mine = match found.sender_session {
        Some(id) => id,
        None => Box::pin(store.sessions().add(from, to, session::SINGLE)).await?,
    };
    // Q-M01 fixed: the receiver's session is the receiver's, not the sender's.
    let theirs = match found.receiver_session {
        Some(id) => id,
        None => Box::pin(store.sessions().add(to, from, session::SINGLE)).await?,
    };
    let rel = match found.relate_id {
        Some(rel) => rel,
        None => match Box::pin(store.relations().get_or_create(from, to)).await? {
            Some(rel) => rel,
            None => return Ok(0),
        },
    };
    if mine == 0 {
        return Ok(0);
    }
    let sessions = [mine, theirs];
    let Some(content) = content_for(ctx, req, kind).await? else {
        // Q-M02 fixed as the quirk says: reply 0, but the id is still used and the sessions
        // bumped, so Redis and MySQL end as the original leaves them.
        Box::pin(store.messages().allocate_single(rel)).await?;
        Box::pin(bump_anyway(ctx, &sessions, now)).await;
        return Ok(0);
    };
    let msg = OutgoingSingle {
        relate_id: rel,
        from_id: from,
        to_id: to,
        content: &content,
        kind,
        created: req.create_time,
    };
    // Id, row + session bumps, unread counter: one coalesced call (see Messages::send_single).
    // No id (Q-M04 fixed): the error reply (msg_id 0), nothing bumped, as the original skips
    // the insert and the bumps when it has no id.
    match store.messages().send_single(&msg, &sessions, now).await? {
        Sent::Stored(id) => Ok(id),
        Sent::NotStored { error, .. } => {
            // Q-M03 fixed: nothing stored → msg_id 0; the sessions are still bumped.
            if !crate::error::is_down(&error) {
                tracing::error!(%error, from, to, "message insert failed");
            }
            Box::pin(bump_anyway(ctx, &sessions, now)).await;
            Ok(0)
        }
    }
}

async fn send_group(ctx: &Ctx, req: &ImMsgData, kind: u8, now: u32) -> Result<u32, Error> {
    let (from, group) = (req.from_user_id, req.to_session_id);
    let store = &ctx.store;
    // Q-P10 fixed: an invalid group or a non-member gets msg_id 0 instead of silence.
    if !store.groups().is_member(from, group).await? {
        tracing::warn!(
            from,
            group,
            "group message from a non-member or to an invalid group"
        );
        return Ok(0);
    }
    let mine = store
        .sessions()
        .get_or_add(from, group, session::GROUP)
        .await?;
    if mine == 0 {
        return Ok(0);
    }
    let id = store.messages().allocate_group(group).await?;
    let Some(content) = content_for(ctx, req, kind).await? else {
        Box::pin(bump_anyway(ctx, &[mine], now)).await;
        return Ok(0);
    };
    let msg = NewGroupMessage {
        group_id: group,
        from_id: from,
        msg_id: id,
        content: &content,
        kind,
        created: req.create_time,
    };
    if let Err(error) = store.messages().store_group(&msg, now, &[mine], now).await {
        if !crate::error::is_down(&error) {
            tracing::error!(%error, from, group, "group message insert failed");
        }
        Box::pin(bump_anyway(ctx, &[mine], now)).await;
        return Ok(0);
    }
    if let Err(error) = store.counters().group_incr(group, from).await {
        // Logged even during a known outage: the message is stored, its counter is behind.
        tracing::error!(%error, from, group, "group unread counter not incremented");
    }
    Ok(id)
}

/// The original bumps the sessions even when nothing was stored; so do we.
async fn bump_anyway(ctx: &Ctx, sessions: &[u32], now: u32) {
    if let Err(error) = ctx.store.sessions().bump(sessions, now).await {
        if !crate::error::is_down(&error) {
            tracing::warn!(%error, ?sessions, "sessions not bumped");
        }
    }
}

// ---------------------------------------------------------------------------------------
// CID_MSG_READ_ACK

/// CID_MSG_READ_ACK (0x0303): marks the whole session read; never answered.
impl Handle for cmd::ReadAck {
    async fn run(ctx: &Ctx, req: ImMsgDataReadAck) -> Result<Option<()>, Error> {
        mark_read(ctx, req.user_id, req.session_id, req.session_type).await?;
        Ok(None)
    }

    fn failed(_: &ImMsgDataReadAck) -> Option<()> {
        None
    }
}

// ---------------------------------------------------------------------------------------
// CID_MSG_UNREAD_CNT_REQUEST

/// CID_MSG_UNREAD_CNT_REQUEST (0x0307): unread counts with the newest message per session.
impl Handle for cmd::UnreadCounts {
    async fn run(ctx: &Ctx, req: ImUnreadMsgCntReq) -> Result<Option<ImUnreadMsgCntRsp>, Error> {
        let user = req.user_id;
        let mut total: u32 = 0;
        let mut list = Vec::new();

        // The single counters (Redis) and the user's groups (MySQL) are independent reads.
        let (counters, memberships) = (ctx.store.counters(), ctx.store.groups());
        let (singles, groups) = tokio::join!(
            counters.single_counts(user),
            memberships.group_ids_of_user(user)
        );
        // Single part; a Redis failure skips the part (as the original).
        let singles = match singles {
            Ok(counts) => counts,
            Err(error) => {
                if !crate::error::is_down(&error) {
                    tracing::warn!(%error, user, "single unread counters unavailable");
                }
                Vec::new()
            }
        };
        // Group part (not de-duplicated, like the original).
        let groups = groups?;
        let group_counts: Vec<(u32, u32)> =
            match ctx.store.counters().group_unread(user, &groups).await {
                Ok(counts) => counts
                    .into_iter()
                    .filter_map(|(g, n)| n.filter(|&n| n > 0).map(|n| (g, n)))
                    .collect(),
                Err(error) => {
                    if !crate::error::is_down(&error) {
                        tracing::warn!(%error, user, "group unread counters unavailable");
                    }
                    Vec::new()
                }
            };
        let peers: Vec<u32> = singles.iter().map(|&(p, _)| p).collect();
        let group_ids: Vec<u32> = group_counts.iter().map(|&(g, _)| g).collect();
        let (single_latest, group_latest) = newest_many(ctx, user, &peers, &group_ids).await?;

        for ((peer, count), latest) in singles.into_iter().zip(single_latest) {
            let Some((msg_id, kind, _, data)) = latest else {
                continue;
            };
            total = total.saturating_add(count);
            list.push(unread_info(
                peer,
                SessionType::Single,
                count,
                msg_id,
                kind,
                peer,
                data,
            ));
        }
        for ((group, n), latest) in group_counts.into_iter().zip(group_latest) {
            // Q-C03: counted even when the newest message cannot be found.
            total = total.saturating_add(n);
            if let Some((msg_id, kind, from, data)) = latest {
                list.push(unread_info(
                    group,
                    SessionType::Group,
                    n,
                    msg_id,
                    kind,
                    from,
                    data,
                ));
            }
        }

        Ok(Some(ImUnreadMsgCntRsp {
            user_id: user,
            total_cnt: total,
            unreadinfo_list: list,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImUnreadMsgCntReq) -> Option<ImUnreadMsgCntRsp> {
        Some(ImUnreadMsgCntRsp {
            user_id: req.user_id,
            total_cnt: 0,
            unreadinfo_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

fn unread_info(
    session_id: u32,
    session_type: SessionType,
    unread_cnt: u32,
    latest_msg_id: u32,
    kind: u8,
    from: u32,
    data: Bytes,
) -> UnreadInfo {
    UnreadInfo {
        session_id,
        session_type: session_type as i32,
        unread_cnt,
        latest_msg_id,
        latest_msg_data: data,
        latest_msg_type: i32::from(kind),
        latest_msg_from_user_id: from,
    }
}

// ---------------------------------------------------------------------------------------
// CID_MSG_LIST_REQUEST / CID_MSG_GET_BY_MSG_ID_REQ

/// A stored row as the lists return it.
struct Row {
    msg_id: u32,
    from: u32,
    created: u32,
    kind: u8,
    content: Vec<u8>,
}

impl From<SingleMessage> for Row {
    fn from(m: SingleMessage) -> Self {
        Row {
            msg_id: m.msg_id,
            from: m.from_id,
            created: m.created,
            kind: m.kind,
            content: m.content,
        }
    }
}

impl From<GroupMessage> for Row {
    fn from(m: GroupMessage) -> Self {
        Row {
            msg_id: m.msg_id,
            from: m.from_id,
            created: m.created,
            kind: m.kind,
            content: m.content,
        }
    }
}

/// Rows → MsgInfo: invalid types skipped, voice expanded (docs/compatibility.md#voice-messages-and-the-aes-placeholder read path).
async fn msg_infos(ctx: &Ctx, rows: Vec<Row>) -> Vec<MsgInfo> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows.into_iter().filter(|r| valid_type(r.kind)) {
        let data = if row.kind == SINGLE_AUDIO || row.kind == GROUP_AUDIO {
            // Boxed like the upload: a large HTTP future on a rare path.
            match Box::pin(voice::expand(ctx, row.content)).await {
                Some(data) => data,
                None => continue, // Q-M11: a failed IMAudio query drops the message.
            }
        } else {
            Bytes::from(row.content)
        };
        out.push(MsgInfo {
            msg_id: row.msg_id,
            from_session_id: row.from,
            create_time: row.created,
            msg_type: i32::from(row.kind),
            msg_data: data,
        });
    }
    out
}

/// Rows of a conversation visible to `user`: a list page or the given ids.
async fn rows(
    ctx: &Ctx,
    user: u32,
    peer: u32,
    session_type: i32,
    page: Page<'_>,
) -> Result<Vec<Row>, Error> {
    let store = &ctx.store;
    if session_type == SessionType::Group as i32 {
        let groups = store.groups();
        if !groups.is_member(user, peer).await? {
            return Ok(Vec::new());
        }
        let joined = groups.join_time(user, peer).await?;
        let found = match page {
            Page::List { begin, count } => {
                store
                    .messages()
                    .list_group(peer, joined, begin, count)
                    .await?
            }
            Page::Ids(ids) => store.messages().by_ids_group(peer, joined, ids).await?,
        };
        Ok(found.into_iter().map(Row::from).collect())
    } else {
        let found = match page {
            Page::List { begin, count } => {
                store
                    .messages()
                    .list_single_between(user, peer, begin, count)
                    .await?
            }
            Page::Ids(ids) => {
                store
                    .messages()
                    .by_ids_single_between(user, peer, ids)
                    .await?
            }
        };
        Ok(found.into_iter().map(Row::from).collect())
    }
}

#[derive(Clone, Copy)]
enum Page<'a> {
    List { begin: u32, count: u32 },
    Ids(&'a [u32]),
}

/// CID_MSG_LIST_REQUEST (0x0309): a page of history, newest first.
impl Handle for cmd::MessageList {
    async fn run(ctx: &Ctx, req: ImGetMsgListReq) -> Result<Option<ImGetMsgListRsp>, Error> {
        let page = Page::List {
            begin: req.msg_id_begin,
            count: req.msg_cnt,
        };
        let found = rows(ctx, req.user_id, req.session_id, req.session_type, page).await?;
        let mut rsp = Self::failed(&req).unwrap_or_default();
        rsp.msg_list = msg_infos(ctx, found).await;
        Ok(Some(rsp))
    }

    fn failed(req: &ImGetMsgListReq) -> Option<ImGetMsgListRsp> {
        Some(ImGetMsgListRsp {
            user_id: req.user_id,
            session_type: req.session_type,
            session_id: req.session_id,
            msg_id_begin: req.msg_id_begin,
            msg_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_MSG_GET_BY_MSG_ID_REQ (0x030d): messages by id (at most 100).
impl Handle for cmd::MessagesById {
    async fn run(ctx: &Ctx, req: ImGetMsgByIdReq) -> Result<Option<ImGetMsgByIdRsp>, Error> {
        let page = Page::Ids(&req.msg_id_list);
        let found = rows(ctx, req.user_id, req.session_id, req.session_type, page).await?;
        let mut rsp = Self::failed(&req).unwrap_or_default();
        rsp.msg_list = msg_infos(ctx, found).await;
        Ok(Some(rsp))
    }

    fn failed(req: &ImGetMsgByIdReq) -> Option<ImGetMsgByIdRsp> {
        Some(ImGetMsgByIdRsp {
            user_id: req.user_id,
            session_type: req.session_type,
            session_id: req.session_id,
            msg_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_MSG_GET_LATEST_MSG_ID_REQ (0x030b): newest msg id of a conversation (0 if none;
/// groups without membership check, Q-M12/Q-S06).
impl Handle for cmd::LatestMsgId {
    async fn run(
        ctx: &Ctx,
        req: ImGetLatestMsgIdReq,
    ) -> Result<Option<ImGetLatestMsgIdRsp>, Error> {
        let store = &ctx.store;
        let newest = if req.session_type == SessionType::Group as i32 {
            store.messages().newest_group(req.session_id).await?
        } else {
            match store
                .relations()
                .find(Db::Slave, req.user_id, req.session_id)
                .await?
            {
                Some(rel) => store.messages().newest_single(rel).await?,
                None => None,
            }
        };
        let mut rsp = Self::failed(&req).unwrap_or_default();
        rsp.latest_msg_id = newest.map_or(0, |m| m.msg_id);
        Ok(Some(rsp))
    }

    fn failed(req: &ImGetLatestMsgIdReq) -> Option<ImGetLatestMsgIdRsp> {
        Some(ImGetLatestMsgIdRsp {
            user_id: req.user_id,
            session_type: req.session_type,
            session_id: req.session_id,
            latest_msg_id: 0,
            attach_data: attach(&req.attach_data),
        })
    }
}
