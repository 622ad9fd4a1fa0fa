//! Device tokens (docs/compatibility.md#push-shield-and-device-tokens).

use std::collections::{HashMap, HashSet};

use dbproxy_model::token::TokenKind;
use dbproxy_protocol::pb::im::base_define::UserTokenInfo;
use dbproxy_protocol::pb::im::login::{ImDeviceTokenReq, ImDeviceTokenRsp};
use dbproxy_protocol::pb::im::server::{ImGetDeviceTokenReq, ImGetDeviceTokenRsp};

use dbproxy_protocol::cmd;

use crate::command::{attach, Handle};
use crate::{Ctx, Error};

/// ClientType WINDOWS: what an absent `client_type` reads as.
const CLIENT_TYPE_DEFAULT: i32 = 1;

/// Longest device token stored, in bytes. APNs and FCM tokens are a few hundred bytes at
/// most; the original stored any length (Redis has no column size to stop it).
pub(crate) const MAX_DEVICE_TOKEN_BYTES: usize = 4096;

/// CID_LOGIN_REQ_DEVICETOKEN (0x0108): store a device token. Always answered (the reply has
/// no result code); a token longer than [`MAX_DEVICE_TOKEN_BYTES`] is not stored.
impl Handle for cmd::SetDeviceToken {
    async fn run(ctx: &Ctx, req: ImDeviceTokenReq) -> Result<Option<ImDeviceTokenRsp>, Error> {
        if req.device_token.len() > MAX_DEVICE_TOKEN_BYTES {
            tracing::warn!(
                user = req.user_id,
                bytes = req.device_token.len(),
                "device token longer than {MAX_DEVICE_TOKEN_BYTES} bytes; not stored"
            );
            return Ok(Self::failed(&req));
        }
        let client_type = req.client_type.unwrap_or(CLIENT_TYPE_DEFAULT);
        ctx.store
            .tokens()
            .set_device_token(
                req.user_id,
                &req.device_token,
                u32::try_from(client_type).unwrap_or(0),
            )
            .await?;
        Ok(Self::failed(&req))
    }

    fn failed(req: &ImDeviceTokenReq) -> Option<ImDeviceTokenRsp> {
        Some(ImDeviceTokenRsp {
            user_id: req.user_id,
            attach_data: attach(&req.attach_data),
        })
    }
}

/// iOS quiet hours: server local hour ≥ 22 or ≤ 7 (Q-X03 kept).
pub(crate) fn is_quiet_hour(hour: u32) -> bool {
    hour >= 22 || hour <= 7
}

/// The server's local hour of day (0–23), as the original's `localtime` (time zone from
/// `TZ` or the system's zone file).
pub(crate) fn local_hour() -> u32 {
    chrono::Timelike::hour(&chrono::Local::now())
}

/// CID_OTHER_GET_DEVICE_TOKEN_REQ (0x0705): push targets with badge counts.
impl Handle for cmd::GetDeviceTokens {
    async fn run(
        ctx: &Ctx,
        req: ImGetDeviceTokenReq,
    ) -> Result<Option<ImGetDeviceTokenRsp>, Error> {
        let quiet = is_quiet_hour(local_hour());
        let store = &ctx.store;
        let tokens = store.tokens().device_tokens(&req.user_id).await?;
        // One batched query for the do-not-disturb flags of the iOS users (Q-X07: same
        // semantics as the original's per-user lookups).
        let muted: HashSet<u32> = if quiet {
            let ios: Vec<u32> = tokens
                .iter()
                .filter(|t| t.kind == TokenKind::Ios)
                .map(|t| t.user_id)
                .collect();
            store
                .users()
                .push_shields(&ios)
                .await?
                .into_iter()
                .filter(|&(_, s)| s == 1)
                .map(|(u, _)| u)
                .collect()
        } else {
            HashSet::new()
        };
        let targets: Vec<_> = tokens
            .into_iter()
            .filter(|t| !(t.kind == TokenKind::Ios && muted.contains(&t.user_id)))
            .collect();
        let ids: Vec<u32> = targets.iter().map(|t| t.user_id).collect();
        let mut groups_of: HashMap<u32, Vec<u32>> = HashMap::new();
        for (u, g) in store.groups().group_ids_of_users(&ids).await? {
            groups_of.entry(u).or_default().push(g);
        }
        let mut list = Vec::with_capacity(targets.len());
        for t in targets {
            let groups = groups_of.get(&t.user_id).map(Vec::as_slice).unwrap_or(&[]);
            let push_count = store.counters().push_badge(t.user_id, groups).await?;
            list.push(UserTokenInfo {
                user_id: t.user_id,
                user_type: t.kind.client_type() as i32,
                token: t.token,
                push_count,
                push_type: 1,
            });
        }
        Ok(Some(ImGetDeviceTokenRsp {
            user_token_info: list,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImGetDeviceTokenReq) -> Option<ImGetDeviceTokenRsp> {
        Some(ImGetDeviceTokenRsp {
            user_token_info: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours() {
        let quiet: Vec<u32> = (0..24).filter(|h| is_quiet_hour(*h)).collect();
        assert_eq!(quiet, vec![0, 1, 2, 3, 4, 5, 6, 7, 22, 23]);
        assert!(local_hour() < 24);
    }

    #[test]
    fn local_hour_is_the_system_clock_hour() {
        // As `date` (libc's localtime) tells it; asked again if the hour turned meanwhile.
        let date_hour = || {
            let out = std::process::Command::new("date").arg("+%H").output();
            out.ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .and_then(|s| s.trim().parse::<u32>().ok())
        };
        for _ in 0..3 {
            let (before, ours, after) = (date_hour(), local_hour(), date_hour());
            if before == after {
                assert_eq!(Some(ours), before);
                return;
            }
        }
        panic!("the hour kept changing");
    }
}
