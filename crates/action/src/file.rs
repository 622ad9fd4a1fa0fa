//! Offline files (behaviour.md §11.24–§11.26).

use dbproxy_model::file::NewOfflineFile;
use dbproxy_protocol::pb::im::base_define::OfflineFileInfo;
use dbproxy_protocol::pb::im::file::{
    ImFileAddOfflineReq, ImFileDelOfflineReq, ImFileHasOfflineReq, ImFileHasOfflineRsp,
};

use crate::command::{attach, now, Command};
use crate::{Ctx, Error};

/// CID_FILE_HAS_OFFLINE_REQ (0x0509): files waiting for the user.
pub(crate) struct HasOffline;

impl Command for HasOffline {
    const NAME: &'static str = "file_has_offline";
    type Req = ImFileHasOfflineReq;
    type Rsp = ImFileHasOfflineRsp;

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
pub(crate) struct AddOffline;

impl Command for AddOffline {
    const NAME: &'static str = "file_add_offline";
    type Req = ImFileAddOfflineReq;
    type Rsp = ImFileAddOfflineReq;

    async fn run(
        ctx: &Ctx,
        req: ImFileAddOfflineReq,
    ) -> Result<Option<ImFileAddOfflineReq>, Error> {
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

    fn failed(_: &ImFileAddOfflineReq) -> Option<ImFileAddOfflineReq> {
        None
    }
}

/// CID_FILE_DEL_OFFLINE_REQ (0x050c): delete by (from, to, task id), all bound (Q-S03);
/// no reply.
pub(crate) struct DelOffline;

impl Command for DelOffline {
    const NAME: &'static str = "file_del_offline";
    type Req = ImFileDelOfflineReq;
    type Rsp = ImFileDelOfflineReq;

    async fn run(
        ctx: &Ctx,
        req: ImFileDelOfflineReq,
    ) -> Result<Option<ImFileDelOfflineReq>, Error> {
        ctx.store
            .files()
            .delete(req.from_user_id, req.to_user_id, &req.task_id)
            .await?;
        Ok(None)
    }

    fn failed(_: &ImFileDelOfflineReq) -> Option<ImFileDelOfflineReq> {
        None
    }
}
