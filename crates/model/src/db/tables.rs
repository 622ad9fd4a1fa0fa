//! diesel table definitions of the TeamTalk schema (`sql/001_schema.sql`), for the tables
//! queried through diesel's DSL. Column names keep the original camelCase via `sql_name`.
//! Message shards are reached through static per-shard SQL instead (see [`crate::shard`]).

diesel::table! {
    use diesel::sql_types::*;

    /// IMUser — user accounts.
    #[sql_name = "IMUser"]
    im_user (id) {
        id -> Unsigned<Integer>,
        sex -> Unsigned<TinyInt>,
        name -> Varchar,
        domain -> Varchar,
        nick -> Varchar,
        password -> Varchar,
        salt -> Varchar,
        phone -> Varchar,
        email -> Varchar,
        avatar -> Nullable<Varchar>,
        #[sql_name = "departId"]
        depart_id -> Unsigned<Integer>,
        status -> Nullable<Unsigned<TinyInt>>,
        created -> Unsigned<Integer>,
        updated -> Unsigned<Integer>,
        push_shield_status -> Unsigned<TinyInt>,
        sign_info -> Varchar,
    }
}

diesel::table! {
    use diesel::sql_types::*;

    /// IMDepart — departments.
    #[sql_name = "IMDepart"]
    im_depart (id) {
        id -> Unsigned<Integer>,
        #[sql_name = "departName"]
        depart_name -> Varchar,
        priority -> Unsigned<Integer>,
        #[sql_name = "parentId"]
        parent_id -> Unsigned<Integer>,
        status -> Unsigned<Integer>,
        created -> Unsigned<Integer>,
        updated -> Unsigned<Integer>,
    }
}

diesel::table! {
    use diesel::sql_types::*;

    /// IMGroup — groups (id is a signed int(11) column, read as u32).
    #[sql_name = "IMGroup"]
    im_group (id) {
        id -> Unsigned<Integer>,
        name -> Varchar,
        avatar -> Varchar,
        creator -> Unsigned<Integer>,
        #[sql_name = "type"]
        group_type -> Unsigned<TinyInt>,
        #[sql_name = "userCnt"]
        user_cnt -> Unsigned<Integer>,
        status -> Unsigned<TinyInt>,
        version -> Unsigned<Integer>,
        #[sql_name = "lastChated"]
        last_chated -> Unsigned<Integer>,
        updated -> Unsigned<Integer>,
        created -> Unsigned<Integer>,
    }
}

diesel::table! {
    use diesel::sql_types::*;

    /// IMGroupMember — group membership rows (status 0 active, 1 removed).
    #[sql_name = "IMGroupMember"]
    im_group_member (id) {
        id -> Unsigned<Integer>,
        #[sql_name = "groupId"]
        group_id -> Unsigned<Integer>,
        #[sql_name = "userId"]
        user_id -> Unsigned<Integer>,
        status -> Unsigned<TinyInt>,
        created -> Unsigned<Integer>,
        updated -> Unsigned<Integer>,
    }
}

diesel::table! {
    use diesel::sql_types::*;

    /// IMTransmitFile — offline file transfers.
    #[sql_name = "IMTransmitFile"]
    im_transmit_file (id) {
        id -> Unsigned<Integer>,
        #[sql_name = "fromId"]
        from_id -> Unsigned<Integer>,
        #[sql_name = "toId"]
        to_id -> Unsigned<Integer>,
        #[sql_name = "fileName"]
        file_name -> Varchar,
        size -> Unsigned<Integer>,
        #[sql_name = "taskId"]
        task_id -> Varchar,
        status -> Unsigned<TinyInt>,
        created -> Unsigned<Integer>,
        updated -> Unsigned<Integer>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(im_group, im_group_member);
