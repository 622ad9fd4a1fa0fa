//! The model calls of each bench mode's handler issued straight through the model crate (no
//! proxy): used for preparation and for the `--direct` backend-limit baseline.
//! Mirrors docs/compatibility.md#sending-a-message (single text) and docs/compatibility.md#message-history-reads (single list).

use dbproxy_model::message::{OutgoingSingle, Sent};
use dbproxy_model::{session, unix_now, Store};

/// Stores one single-chat text message from `from` to `to` as the CID_MSG_DATA handler
/// does: the send lookup (both sessions and the relation in one coalesced read), the
/// locked create paths only for what is missing, then the msg id, the row plus session
/// bumps and the receiver's unread counter in one coalesced call. Returns the msg id.
pub async fn send_single(
    store: &Store,
    from: u32,
    to: u32,
    create_time: u32,
    content: &[u8],
) -> dbproxy_model::Result<u32> {
    let now = unix_now();
    let found = store.sessions().single_send_lookup(from, to).await?;
    let s = match found.sender_session {
        Some(id) => id,
        None => store.sessions().add(from, to, session::SINGLE).await?,
    };
    let ps = match found.receiver_session {
        Some(id) => id,
        None => store.sessions().add(to, from, session::SINGLE).await?,
    };
    let relate_id = match found.relate_id {
        Some(id) => id,
        None => match store.relations().get_or_create(from, to).await? {
            Some(id) => id,
            None => return Ok(0),
        },
    };
    let m = OutgoingSingle {
        relate_id,
        from_id: from,
        to_id: to,
        content,
        kind: 1,
        created: create_time,
    };
    match store.messages().send_single(&m, &[s, ps], now).await? {
        Sent::Stored(id) => Ok(id),
        Sent::NotStored { error, .. } => Err(error),
    }
}

/// Reads the newest `count` messages of the pair as CID_MSG_LIST_REQUEST (msg_id_begin 0)
/// does: relation and page in one coalesced slave read. Returns how many came back.
pub async fn fetch_single(
    store: &Store,
    user: u32,
    peer: u32,
    count: u32,
) -> dbproxy_model::Result<usize> {
    Ok(store
        .messages()
        .list_single_between(user, peer, 0, count)
        .await?
        .len())
}

/// The account lookup and password check of IMValidateReq. Returns whether it matched.
pub async fn login(store: &Store, name: &str, client_md5: &str) -> dbproxy_model::Result<bool> {
    Ok(store.users().find_for_login(name).await?.is_some_and(|u| {
        dbproxy_model::user::md5_hex(format!("{client_md5}{}", u.salt).as_bytes()) == u.password
    }))
}

/// The reads of IMUnreadMsgCntReq: single counters and groups (concurrently), group
/// counters, newest message of each conversation. Returns the number of entries.
pub async fn unread(store: &Store, user: u32) -> dbproxy_model::Result<usize> {
    let (counters, groups) = (store.counters(), store.groups());
    let (singles, group_ids) =
        tokio::join!(counters.single_counts(user), groups.group_ids_of_user(user));
    let (singles, group_ids) = (singles?, group_ids?);
    let group_counts = counters.group_unread(user, &group_ids).await?;
    let peers: Vec<u32> = singles.iter().map(|&(p, _)| p).collect();
    let with_unread: Vec<u32> = group_counts
        .iter()
        .filter(|(_, n)| n.is_some_and(|n| n > 0))
        .map(|&(g, _)| g)
        .collect();
    let (a, b) = store
        .messages()
        .newest_many(user, &peers, &with_unread)
        .await?;
    Ok(a.iter().flatten().count() + b.iter().flatten().count())
}

/// The reads of IMRecentContactSessionReq from time 0: the session rows, then the newest
/// message of each single and group session. Returns the sessions with a newest message.
pub async fn sessions(store: &Store, user: u32) -> dbproxy_model::Result<usize> {
    let rows = store.sessions().recent(user, 0).await?;
    let of = |kind: u8| -> Vec<u32> {
        rows.iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.peer_id)
            .collect()
    };
    let (peers, groups) = (of(session::SINGLE), of(session::GROUP));
    let (a, b) = store.messages().newest_many(user, &peers, &groups).await?;
    Ok(a.iter().flatten().count() + b.iter().flatten().count())
}

/// The reads of IMNormalGroupListReq: the user's groups, then their versions.
pub async fn group_list(store: &Store, user: u32) -> dbproxy_model::Result<usize> {
    let ids = store.groups().group_ids_of_user(user).await?;
    Ok(store.groups().normal_versions(&ids).await?.len())
}

/// The reads of IMGroupInfoListReq at version 0: validity of each group (16 at a time),
/// the rows, then each member list (16 at a time). Returns the groups answered.
pub async fn group_info(store: &Store, groups: &[u32]) -> dbproxy_model::Result<usize> {
    use futures::{StreamExt, TryStreamExt};
    let g = store.groups();
    let valid: Vec<bool> = futures::stream::iter(groups.to_vec())
        .map(move |id| async move { g.is_valid(id).await })
        .buffered(16)
        .try_collect()
        .await?;
    let ids: Vec<u32> = groups
        .iter()
        .zip(valid)
        .filter_map(|(&id, ok)| ok.then_some(id))
        .collect();
    let rows = g.by_ids(&ids).await?;
    let members: Vec<Vec<u32>> =
        futures::stream::iter(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .map(move |id| async move { g.members(id).await })
            .buffered(16)
            .try_collect()
            .await?;
    Ok(members.len())
}

/// The reads of IMGetMsgByIdReq for a 1:1 conversation: the relation (remembered or slave),
/// then the messages with those ids. Returns how many came back.
pub async fn by_ids(
    store: &Store,
    user: u32,
    peer: u32,
    ids: &[u32],
) -> dbproxy_model::Result<usize> {
    Ok(store
        .messages()
        .by_ids_single_between(user, peer, ids)
        .await?
        .len())
}

/// IMMsgDataReadAck of a 1:1 session (the counter cleared), then the unread reads.
pub async fn read_unread(store: &Store, user: u32, peer: u32) -> dbproxy_model::Result<usize> {
    store.counters().clear_single(user, peer).await?;
    unread(store, user).await
}
