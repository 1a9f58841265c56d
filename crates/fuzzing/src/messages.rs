//! Typed messages of the control protocol, with odd strings and numbers at their edges: what
//! the message targets encode and decode, and what the other targets' scripts are made of.

use crate::choice::{Number, Text};
use arbitrary::Arbitrary;
use bytes::Bytes;
use wire::{ClientMsg, ErrorCode, FileEntry, ServerMsg};

/// A message type the fuzz inputs build: how it is made, and how it goes on the wire.
pub trait Message {
    /// The wire's message.
    type Msg: PartialEq + std::fmt::Debug;
    /// It.
    fn msg(&self) -> Self::Msg;
    /// Its frame.
    fn frame(msg: &Self::Msg) -> Bytes;
    /// Decodes a payload.
    fn decode(payload: &[u8]) -> Option<Self::Msg>;
}

/// Every close reason, the one a newer server might send included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Reason {
    /// [`wire::CloseReason::Quit`].
    Quit,
    /// [`wire::CloseReason::Disconnected`].
    Disconnected,
    /// [`wire::CloseReason::Timeout`].
    Timeout,
    /// [`wire::CloseReason::SlowConsumer`].
    SlowConsumer,
    /// [`wire::CloseReason::ProtocolError`].
    ProtocolError,
    /// [`wire::CloseReason::ServerShutdown`].
    ServerShutdown,
    /// [`wire::CloseReason::AccountDeleted`].
    AccountDeleted,
    /// [`wire::CloseReason::Unknown`].
    Unknown,
}

impl Reason {
    fn reason(self) -> wire::CloseReason {
        match self {
            Reason::Quit => wire::CloseReason::Quit,
            Reason::Disconnected => wire::CloseReason::Disconnected,
            Reason::Timeout => wire::CloseReason::Timeout,
            Reason::SlowConsumer => wire::CloseReason::SlowConsumer,
            Reason::ProtocolError => wire::CloseReason::ProtocolError,
            Reason::ServerShutdown => wire::CloseReason::ServerShutdown,
            Reason::AccountDeleted => wire::CloseReason::AccountDeleted,
            Reason::Unknown => wire::CloseReason::Unknown,
        }
    }
}

fn req(req: &Option<Number>) -> Option<u64> {
    req.map(|n| n.0)
}

/// Any client message, with odd strings and edge numbers.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
#[allow(missing_docs)] // the fields are the message's
pub enum ClientMsgChoice {
    Hello {
        version: Number,
        name: Text,
        password: Option<Text>,
        register: bool,
    },
    SendAll {
        text: Text,
        req: Option<Number>,
    },
    SendPrivate {
        to: Text,
        text: Text,
        req: Option<Number>,
    },
    ListUsers {
        req: Option<Number>,
    },
    ListFiles {
        req: Option<Number>,
        after: Option<Text>,
        limit: Option<Number>,
    },
    Download {
        file: Text,
        req: Option<Number>,
    },
    Cancel {
        id: Number,
        req: Option<Number>,
    },
    History {
        with: Option<Text>,
        before: Option<Number>,
        limit: Option<Number>,
        req: Option<Number>,
    },
    Register {
        password: Text,
        req: Option<Number>,
    },
    ChangePassword {
        password: Text,
        new_password: Text,
        req: Option<Number>,
    },
    DeleteAccount {
        password: Text,
        req: Option<Number>,
    },
    Ping,
    Quit,
}

impl ClientMsgChoice {
    /// The message.
    pub fn msg(&self) -> ClientMsg {
        match self {
            Self::Hello {
                version,
                name,
                password,
                register,
            } => ClientMsg::Hello {
                version: version.0 as u32,
                name: name.string(),
                password: password.as_ref().map(Text::string),
                register: *register,
            },
            Self::History {
                with,
                before,
                limit,
                req: r,
            } => ClientMsg::History {
                with: with.as_ref().map(Text::string),
                before: before.map(|n| n.0),
                limit: limit.map(|n| n.0 as u32),
                req: req(r),
            },
            Self::Register { password, req: r } => ClientMsg::Register {
                password: password.string(),
                req: req(r),
            },
            Self::ChangePassword {
                password,
                new_password,
                req: r,
            } => ClientMsg::ChangePassword {
                password: password.string(),
                new_password: new_password.string(),
                req: req(r),
            },
            Self::DeleteAccount { password, req: r } => ClientMsg::DeleteAccount {
                password: password.string(),
                req: req(r),
            },
            Self::SendAll { text, req: r } => ClientMsg::SendAll {
                text: text.string(),
                req: req(r),
            },
            Self::SendPrivate { to, text, req: r } => ClientMsg::SendPrivate {
                to: to.string(),
                text: text.string(),
                req: req(r),
            },
            Self::ListUsers { req: r } => ClientMsg::ListUsers { req: req(r) },
            Self::ListFiles {
                req: r,
                after,
                limit,
            } => ClientMsg::ListFiles {
                req: req(r),
                after: after.as_ref().map(Text::string),
                limit: limit.map(|n| n.0 as u32),
            },
            Self::Download { file, req: r } => ClientMsg::Download {
                file: file.string(),
                req: req(r),
            },
            Self::Cancel { id, req: r } => ClientMsg::Cancel {
                id: id.0,
                req: req(r),
            },
            Self::Ping => ClientMsg::Ping,
            Self::Quit => ClientMsg::Quit,
        }
    }
}

impl Message for ClientMsgChoice {
    type Msg = ClientMsg;
    fn msg(&self) -> ClientMsg {
        ClientMsgChoice::msg(self)
    }
    fn frame(msg: &ClientMsg) -> Bytes {
        msg.to_frame()
    }
    fn decode(payload: &[u8]) -> Option<ClientMsg> {
        ClientMsg::decode(payload).ok()
    }
}

const CODES: &[ErrorCode] = &[
    ErrorCode::NameTaken,
    ErrorCode::InvalidName,
    ErrorCode::NoSuchUser,
    ErrorCode::TooLong,
    ErrorCode::ServerFull,
    ErrorCode::UnknownCommand,
    ErrorCode::UnsupportedVersion,
    ErrorCode::BadRequest,
    ErrorCode::NoSuchFile,
    ErrorCode::Busy,
    ErrorCode::NoSuchTransfer,
    ErrorCode::RateLimited,
    ErrorCode::Internal,
    ErrorCode::AuthFailed,
    ErrorCode::InvalidPassword,
    ErrorCode::NotRegistered,
    ErrorCode::MailboxFull,
    ErrorCode::Unknown,
];

/// A name in a list of users (up to 4 of them).
fn names(names: &[Text]) -> Vec<String> {
    names.iter().take(4).map(Text::string).collect()
}

/// Any server message, with odd strings and edge numbers.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
#[allow(missing_docs)] // the fields are the message's
pub enum ServerMsgChoice {
    Welcome {
        version: Number,
        name: Text,
        users: Vec<Text>,
        server: Text,
        account: bool,
    },
    Joined {
        name: Text,
        time: Number,
    },
    Left {
        name: Text,
        time: Number,
        reason: Reason,
    },
    Message {
        id: Option<Number>,
        from: Text,
        text: Text,
        private: bool,
        time: Number,
        history: bool,
        offline: bool,
    },
    History {
        req: Option<Number>,
        with: Option<Text>,
        /// (id, from, to, text, time), up to 4 of them.
        messages: Vec<(Number, Text, Option<Text>, Text, Number)>,
        more: bool,
    },
    MessageQueued {
        req: Option<Number>,
        to: Text,
        id: Number,
    },
    Registered {
        req: Option<Number>,
        name: Text,
    },
    PasswordChanged {
        req: Option<Number>,
    },
    AccountDeleted {
        req: Option<Number>,
    },
    Users {
        req: Option<Number>,
        names: Vec<Text>,
    },
    Files {
        req: Option<Number>,
        files: Vec<(Text, Number)>,
        next: Option<Text>,
    },
    Error {
        req: Option<Number>,
        /// Index into the error codes (modulo their number).
        code: u8,
        message: Text,
    },
    DownloadReady {
        req: Option<Number>,
        id: Number,
        file: Text,
        size: Number,
        hash: [u8; wire::HEX_VALUE_LEN],
        secret: [u8; wire::HEX_VALUE_LEN],
        port: u16,
    },
    DownloadQueued {
        req: Option<Number>,
        id: Number,
        file: Text,
        position: Number,
        preparing: bool,
    },
    Cancelled {
        req: Option<Number>,
        id: Number,
    },
    Pong,
    Bye {
        reason: Reason,
        message: Text,
    },
}

impl Message for ServerMsgChoice {
    type Msg = ServerMsg;
    fn msg(&self) -> ServerMsg {
        match self {
            Self::Welcome {
                version,
                name,
                users,
                server,
                account,
            } => ServerMsg::Welcome {
                version: version.0 as u32,
                name: name.string(),
                users: names(users),
                server: server.string(),
                account: *account,
            },
            Self::Joined { name, time } => ServerMsg::Joined {
                name: name.string(),
                time: time.0,
            },
            Self::Left { name, time, reason } => ServerMsg::Left {
                name: name.string(),
                time: time.0,
                reason: reason.reason(),
            },
            Self::Message {
                id,
                from,
                text,
                private,
                time,
                history,
                offline,
            } => ServerMsg::Message {
                id: id.map(|n| n.0),
                from: from.string(),
                text: text.string(),
                private: *private,
                time: time.0,
                history: *history,
                offline: *offline,
            },
            Self::History {
                req: r,
                with,
                messages,
                more,
            } => ServerMsg::History {
                req: req(r),
                with: with.as_ref().map(Text::string),
                messages: messages
                    .iter()
                    .take(4)
                    .map(|(id, from, to, text, time)| wire::StoredMessage {
                        id: id.0,
                        from: from.string(),
                        to: to.as_ref().map(Text::string),
                        text: text.string(),
                        time: time.0,
                    })
                    .collect(),
                more: *more,
            },
            Self::MessageQueued { req: r, to, id } => ServerMsg::MessageQueued {
                req: req(r),
                to: to.string(),
                id: id.0,
            },
            Self::Registered { req: r, name } => ServerMsg::Registered {
                req: req(r),
                name: name.string(),
            },
            Self::PasswordChanged { req: r } => ServerMsg::PasswordChanged { req: req(r) },
            Self::AccountDeleted { req: r } => ServerMsg::AccountDeleted { req: req(r) },
            Self::Users { req: r, names: n } => ServerMsg::Users {
                req: req(r),
                names: names(n),
            },
            Self::Files {
                req: r,
                files,
                next,
            } => ServerMsg::Files {
                req: req(r),
                files: files
                    .iter()
                    .take(3)
                    .map(|(name, size)| FileEntry {
                        name: name.string(),
                        size: size.0,
                    })
                    .collect(),
                next: next.as_ref().map(Text::string),
            },
            Self::Error {
                req: r,
                code,
                message,
            } => ServerMsg::Error {
                req: req(r),
                code: CODES[usize::from(*code) % CODES.len()],
                message: message.string(),
            },
            Self::DownloadReady {
                req: r,
                id,
                file,
                size,
                hash,
                secret,
                port,
            } => ServerMsg::DownloadReady {
                req: req(r),
                id: id.0,
                file: file.string(),
                size: size.0,
                hash: wire::FileHash(*hash),
                secret: wire::TransferSecret(*secret),
                port: *port,
            },
            Self::DownloadQueued {
                req: r,
                id,
                file,
                position,
                preparing,
            } => ServerMsg::DownloadQueued {
                req: req(r),
                id: id.0,
                file: file.string(),
                position: position.0 as u32,
                preparing: *preparing,
            },
            Self::Cancelled { req: r, id } => ServerMsg::Cancelled {
                req: req(r),
                id: id.0,
            },
            Self::Pong => ServerMsg::Pong,
            Self::Bye { reason, message } => ServerMsg::Bye {
                reason: reason.reason(),
                message: message.string(),
            },
        }
    }
    fn frame(msg: &ServerMsg) -> Bytes {
        msg.to_frame()
    }
    fn decode(payload: &[u8]) -> Option<ServerMsg> {
        ServerMsg::decode(payload).ok()
    }
}
