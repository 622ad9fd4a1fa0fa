//! Offline files (docs/compatibility.md#offline-files).

use dbproxy_model::file::NewOfflineFile;
use dbproxy_protocol::pb::im::base_define::OfflineFileInfo;
use dbproxy_protocol::pb::im::file::{
    ImFileAddOfflineReq, ImFileDelOfflineReq, ImFileHasOfflineReq, ImFileHasOfflineRsp,
};

use dbproxy_protocol::cmd;

use crate::command::{attach, now, Handle};
use crate::{Ctx, Error};

/// CID_FILE_HAS_OFFLINE_REQ (0x0509): files waiting for the user.
impl Handle for cmd::HasOfflineFile {
    async fn run(
        ctx: &Ctx,
        req: ImFileHasOfflineReq,
    ) -> Result<Option<ImFileHasOfflineRsp>, Error> {
        let list = ctx
            .store
            .files()
            .offline_for(req.user_id)
            .await?
            .into_iter()
            .map(|f| OfflineFileInfo {
                from_user_id: f.from_id,
                task_id: f.task_id,
                file_name: f.file_name,
                file_size: f.size,
            })
            .collect();
        Ok(Some(ImFileHasOfflineRsp {
            user_id: req.user_id,
            offline_file_list: list,
            ip_addr_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        }))
    }

    fn failed(req: &ImFileHasOfflineReq) -> Option<ImFileHasOfflineRsp> {
        Some(ImFileHasOfflineRsp {
            user_id: req.user_id,
            offline_file_list: Vec::new(),
            ip_addr_list: Vec::new(),
            attach_data: attach(&req.attach_data),
        })
    }
}

/// CID_FILE_ADD_OFFLINE_REQ (0x050b): record an offline file; no reply.
impl Handle for cmd::AddOfflineFile {
    async fn run(ctx: &Ctx, req: ImFileAddOfflineReq) -> Result<Option<()>, Error> {
        let file = NewOfflineFile {
            from_id: req.from_user_id,
            to_id: req.to_user_id,
            task_id: req.task_id,
            file_name: req.file_name,
            size: req.file_size,
        };
        ctx.store.files().add(&file, now()).await?;
        Ok(None)
    }

    fn failed(_: &ImFileAddOfflineReq) -> Option<()> {
        None
    }
}

/// CID_FILE_DEL_OFFLINE_REQ (0x050c): delete by (from, to, task id), all bound (Q-S03);
/// no reply.
impl Handle for cmd::DelOfflineFile {
    async fn run(ctx: &Ctx, req: ImFileDelOfflineReq) -> Result<Option<()>, Error> {
        ctx.store
            .files()
            .delete(req.from_user_id, req.to_user_id, &req.task_id)
            .await?;
        Ok(None)
    }

    fn failed(_: &ImFileDelOfflineReq) -> Option<()> {
        None
    }
}
