//! The statements of the send and fetch handlers issued straight through the model crate
//! (no proxy): used for preparation and for the `--direct` backend-limit baseline.
//! Mirrors behaviour.md §11.10 (single text) and §11.13 (single list).

use dbproxy_model::message::{self, NewSingleMessage};
use dbproxy_model::{relation, session, unix_now, unread, Db, Store};

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
    let s = session::get_or_add(store, from, to, session::SINGLE).await?;
    let ps = session::get_or_add(store, to, from, session::SINGLE).await?;
    let Some(relate_id) = relation::get_or_create(store, from, to).await? else {
        return Ok(0);
    };
    let msg_id = message::allocate_single(store, relate_id).await?;
    let m = NewSingleMessage {
        relate_id,
        from_id: from,
        to_id: to,
        msg_id,
        content,
        kind: 1,
        created: create_time,
    };
    message::store_single(store, &m, &[s, ps], now).await?;
    unread::incr_single(store, to, from).await?;
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
    let Some(relate_id) = relation::find(store, Db::Slave, user, peer).await? else {
        return Ok(0);
    };
    Ok(message::list_single(store, relate_id, 0, count)
        .await?
        .len())
}
