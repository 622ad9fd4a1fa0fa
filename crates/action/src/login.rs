//! Login validation and the user-level push shield (docs/compatibility.md#login-and-lockout).

use dbproxy_model::user::User;
use dbproxy_protocol::pb::im::base_define::UserInfo;
use dbproxy_protocol::pb::im::login::{
    ImPushShieldReq, ImPushShieldRsp, ImQueryPushShieldReq, ImQueryPushShieldRsp,
};
use dbproxy_protocol::pb::im::server::{ImValidateReq, ImValidateRsp};

use dbproxy_protocol::cmd;

use crate::command::{attach, now, Handle};
use crate::{Ctx, Error};

const OK_TEXT: &str = "成功";
const BAD_PASSWORD_TEXT: &str = "用户名/密码错误";
const LOCKED_TEXT: &str = "用户名/密码错误次数太多";
const INTERNAL_TEXT: &str = "服务端内部错误";

/// CID_OTHER_VALIDATE_REQ (0x0703): password check with per-name lockout: this process's
/// own counts and the names locked through any instance (Redis).
impl Handle for cmd::Validate {
    async fn run(ctx: &Ctx, req: ImValidateReq) -> Result<Option<ImValidateRsp>, Error> {
        let now = u64::from(now());
        let name = &req.user_name;
        let digest = dbproxy_model::keys::login_digest(name);
        refresh_shared_locks(ctx).await;
        if ctx.logins.is_locked(name, now) || ctx.shared_locks.is_locked(&digest, now) {
            tracing::warn!(user = %name, "login locked out after repeated failures");
            metrics::counter!(crate::metrics::LOGIN_LOCKOUTS).increment(1);
            return Ok(Some(reply(&req, 6, LOCKED_TEXT, None)));
        }
        // A backend failure propagates as Err: answered with code 1 by `failed` and,
        // unlike the original (Q-L01), not counted as a failed attempt.
        let user = ctx.store.users().find_for_login(name).await?;
        match user.filter(|u| password_matches(u, &req.password)) {
            Some(user) => {
                // Failures recorded here are cleared everywhere; those recorded only through
                // other instances age out there (SCALING.md).
                if ctx.logins.record_success(name) {
                    ctx.shared_locks.remove(&digest);
                    if let Err(error) = ctx.store.login_failures().clear(name).await {
                        note_shared_error(&error);
                    }
                }
                let mut info = user_info(&user);
                info.status = 0;
                Ok(Some(reply(&req, 0, OK_TEXT, Some(info))))
            }
            None => {
                ctx.logins.record_failure(name, now);
                let (max, window) = (
                    ctx.settings.lockout_max_failures,
                    ctx.settings.lockout_window.as_secs(),
                );
                match ctx
                    .store
                    .login_failures()
                    .record(name, now, max, window)
                    .await
                {
                    Ok(Some(until)) => ctx.shared_locks.insert(digest, until),
                    Ok(None) => {}
                    Err(error) => note_shared_error(&error),
                }
                metrics::counter!(crate::metrics::LOGIN_FAILURES).increment(1);
                Ok(Some(reply(&req, 1, BAD_PASSWORD_TEXT, None)))
            }
        }
    }

    fn failed(req: &ImValidateReq) -> Option<ImValidateRsp> {
        Some(reply(req, 1, BAD_PASSWORD_TEXT, None))
    }

    fn undecodable() -> Option<ImValidateRsp> {
        // Q-P05: the user name is unknown, so the required field stays empty and there is
        // no attach_data; msg_server ignores this reply like the original's.
        Some(ImValidateRsp {
            user_name: String::new(),
            result_code: 2,
            result_string: Some(INTERNAL_TEXT.to_owned()),
            user_info: None,
            attach_data: None,
        })
    }
}

/// Reads the names locked through any instance again when this process's copy is older than
/// `lockout::SHARED_REFRESH` (one login per refresh pays the Redis call; while Redis cannot
/// answer the last copy and this process's own counts decide).
async fn refresh_shared_locks(ctx: &Ctx) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if !ctx.shared_locks.claim_refresh(now_ms) {
        return;
    }
    match ctx.store.login_failures().locked_after(now_ms / 1000).await {
        Ok(locks) => ctx.shared_locks.refresh(locks, now_ms / 1000),
        Err(error) => note_shared_error(&error),
    }
}

fn note_shared_error(error: &dbproxy_model::Error) {
    if !crate::error::is_down(error) {
        tracing::warn!(%error, "shared login failures unavailable; this process's count applies");
    }
}

fn reply(req: &ImValidateReq, code: u32, text: &str, info: Option<UserInfo>) -> ImValidateRsp {
    ImValidateRsp {
        user_name: req.user_name.clone(),
        result_code: code,
        result_string: Some(text.to_owned()),
        user_info: info,
        attach_data: attach(&req.attach_data),
    }
}

/// lowercase-hex md5(client md5 + salt) compared exactly with the stored hash (Q-S05).
fn password_matches(user: &User, client_md5: &str) -> bool {
    let mut input = Vec::with_capacity(client_md5.len() + user.salt.len());
    input.extend_from_slice(client_md5.as_bytes());
    input.extend_from_slice(user.salt.as_bytes());
    format!("{:x}", md5::compute(&input)) == user.password
}

/// IMUser row → UserInfo with the column mapping of docs/compatibility.md#login-and-lockout.
pub(crate) fn user_info(user: &User) -> UserInfo {
    UserInfo {
        user_id: user.id,
        user_gender: user.sex,
        user_nick_name: user.nick.clone(),
        avatar_url: user.avatar.clone(),
        department_id: user.depart_id,
        email: user.email.clone(),
        user_real_name: user.name.clone(),
        user_tel: user.phone.clone(),
        user_domain: user.domain.clone(),
        status: user.status,
        sign_info: Some(user.sign_info.clone()),
    }
}

/// CID_LOGIN_REQ_PUSH_SHIELD (0x010c): set IMUser.push_shield_status.
impl Handle for cmd::SetPushShield {
    async fn run(ctx: &Ctx, req: ImPushShieldReq) -> Result<Option<ImPushShieldRsp>, Error> {
        // Matched-rows semantics (Q-D05): setting the same value again succeeds.
        let found = ctx
            .store
            .users()
            .set_push_shield(req.user_id, req.shield_status, now())
            .await?;
        Ok(Some(ImPushShieldRsp {
            user_id: req.user_id,
            result_code: if found { 0 } else { 1 },
            shield_status: found.then_some(req.shield_status),
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImPushShieldReq) -> Option<ImPushShieldRsp> {
        Some(ImPushShieldRsp {
            user_id: req.user_id,
            result_code: 1,
            shield_status: None,
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_LOGIN_REQ_QUERY_PUSH_SHIELD (0x010e): read IMUser.push_shield_status.
impl Handle for cmd::QueryPushShield {
    async fn run(
        ctx: &Ctx,
        req: ImQueryPushShieldReq,
    ) -> Result<Option<ImQueryPushShieldRsp>, Error> {
        let status = ctx.store.users().push_shield(req.user_id).await?;
        Ok(Some(ImQueryPushShieldRsp {
            user_id: req.user_id,
            result_code: if status.is_some() { 0 } else { 1 },
            shield_status: status,
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImQueryPushShieldReq) -> Option<ImQueryPushShieldRsp> {
        Some(ImQueryPushShieldRsp {
            user_id: req.user_id,
            result_code: 1,
            shield_status: None,
            attach_data: attach(&req.attach_data),
        })
    }
}
