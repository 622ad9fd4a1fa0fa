//! The statements of the send and fetch handlers issued straight through the model crate
//! (no proxy): used for preparation and for the `--direct` backend-limit baseline.
//! Mirrors behaviour.md §11.10 (single text) and §11.13 (single list).

use dbproxy_model::message::NewSingleMessage;
use dbproxy_model::{session, unix_now, Db, Store};

/// Stores one single-chat text message from `from` to `to` like CID_MSG_DATA: both sessions
/// (found or added), the relation (found or created), a msg id from Redis, the row plus
/// session bumps in one transaction, the receiver's unread counter. Returns the msg id.
pub async fn send_single(
    store: &Store,
    from: u32,
    to: u32,
    create_time: u32,
    content: &[u8],
) -> dbproxy_model::Result<u32> {
    let now = unix_now();
    let s = store
        .sessions()
        .get_or_add(from, to, session::SINGLE)
        .await?;
    let ps = store
        .sessions()
        .get_or_add(to, from, session::SINGLE)
        .await?;
    let Some(relate_id) = store.relations().get_or_create(from, to).await? else {
        return Ok(0);
    };
    let msg_id = store.messages().allocate_single(relate_id).await?;
    let m = NewSingleMessage {
        relate_id,
        from_id: from,
        to_id: to,
        msg_id,
        content,
        kind: 1,
        created: create_time,
    };
    store.messages().store_single(&m, &[s, ps], now).await?;
    store.counters().incr_single(to, from).await?;
    Ok(msg_id)
}

/// Reads the newest `count` messages of the pair like CID_MSG_LIST_REQUEST (msg_id_begin 0):
/// relation lookup on the slave, then the list. Returns how many messages came back.
pub async fn fetch_single(
    store: &Store,
    user: u32,
    peer: u32,
    count: u32,
) -> dbproxy_model::Result<usize> {
    let Some(relate_id) = store.relations().find(Db::Slave, user, peer).await? else {
        return Ok(0);
    };
    Ok(store
        .messages()
        .list_single(relate_id, 0, count)
        .await?
        .len())
}
