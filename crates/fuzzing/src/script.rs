//! The input of the `server_session` target: a client's session as a typed script of
//! requests, frames and raw bytes, written out as the byte stream the server reads.

use crate::choice::{Text, position};
use crate::control::ClientMsgChoice;
use crate::session::{PROBE, SHARED_FILE, WATCHER};
use arbitrary::Arbitrary;
use wire::{ClientMsg, MAX_FRAME_LEN, MAX_TEXT_LEN, encode_frame};

/// A client's byte stream built from a script: mostly well-formed requests (so the session
/// gets far), with garbage frames, stray bytes, invalid UTF-8, cut frames and bad length
/// headers among them.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct Session {
    /// The first frame: a HELLO, or none at all.
    pub opening: Opening,
    /// What follows (up to 48 steps).
    pub steps: Vec<Step>,
}

/// How a session opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Opening {
    /// With a HELLO.
    Hello(Version, Name),
    /// With something else.
    NoHello,
}

/// The protocol version a HELLO offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Version {
    /// 0, which no server speaks.
    Zero,
    /// Any small one (newer than ours, often).
    Other(u8),
    /// Ours.
    Current,
}

/// Names a script tries: valid, taken (any case), invalid, the probe's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Name {
    /// `fuzz`.
    Fuzz,
    /// `Fuzz.2`.
    FuzzDot2,
    /// `a`.
    A,
    /// 32 characters, the longest allowed.
    Longest,
    /// 33.
    TooLong,
    /// The watcher's.
    Watcher,
    /// The watcher's in capitals.
    WatcherCapitals,
    /// With a space.
    BadName,
    /// `émile`.
    Accented,
    /// Empty.
    Empty,
    /// The probe's.
    Probe,
}

impl Name {
    fn name(self) -> &'static str {
        match self {
            Name::Fuzz => "fuzz",
            Name::FuzzDot2 => "Fuzz.2",
            Name::A => "a",
            Name::Longest => "abcdefghijklmnopqrstuvwxyz012345",
            Name::TooLong => "abcdefghijklmnopqrstuvwxyz0123456",
            Name::Watcher => WATCHER,
            Name::WatcherCapitals => "WATCHER",
            Name::BadName => "bad name",
            Name::Accented => "émile",
            Name::Empty => "",
            Name::Probe => PROBE,
        }
    }
}

/// File names a script asks for: the shared one, escapes, hidden and missing ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum FileName {
    /// `SHARED_FILE`.
    Shared,
    /// `../hello.txt`.
    Parent,
    /// `./hello.txt`.
    Dot,
    /// `hello.txt/`.
    TrailingSlash,
    /// `HELLO.TXT`.
    Capitals,
    /// `.hidden`.
    Hidden,
    /// Empty.
    Empty,
    /// `/etc/passwd`.
    Absolute,
    /// `nope`.
    Missing,
}

impl FileName {
    fn name(self) -> &'static str {
        match self {
            FileName::Shared => SHARED_FILE,
            FileName::Parent => "../hello.txt",
            FileName::Dot => "./hello.txt",
            FileName::TrailingSlash => "hello.txt/",
            FileName::Capitals => "HELLO.TXT",
            FileName::Hidden => ".hidden",
            FileName::Empty => "",
            FileName::Absolute => "/etc/passwd",
            FileName::Missing => "nope",
        }
    }
}

/// Whom a private message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum To {
    /// The watcher.
    Watcher,
    /// The watcher, in capitals.
    WatcherCapitals,
    /// `fuzz` (often the sender itself).
    Fuzz,
    /// Nobody online.
    Nobody,
    /// The probe (not online yet).
    Probe,
}

/// A chat text.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Said {
    /// Any short text.
    Text(Text),
    /// Exactly as long as allowed.
    Longest,
    /// One byte too long.
    TooLong,
}

/// A length header with no frame behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Header {
    /// 0.
    Zero,
    /// One more than the cap.
    JustTooLong,
    /// `u32::MAX`.
    Max,
    /// Any.
    Any(u32),
}

/// One step of a [`Session`].
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Step {
    /// A chat message, to everyone or to one user.
    Say {
        /// The request number (all but HELLO-time messages may carry one).
        req: Option<u8>,
        /// The text.
        text: Said,
        /// Whom to, if private.
        to: Option<To>,
    },
    /// `list_users`.
    ListUsers(Option<u8>),
    /// `list_files`.
    ListFiles(Option<u8>),
    /// `download`.
    Download(Option<u8>, FileName),
    /// `cancel` of transfer 0 to 7.
    Cancel(Option<u8>, u8),
    /// `ping`.
    Ping,
    /// Any client message.
    Any(ClientMsgChoice),
    /// A (second) HELLO.
    Hello(Name),
    /// A frame around any payload (up to 64 bytes; an empty one has a length of zero).
    Frame(Vec<u8>),
    /// A `send_all` whose text is any bytes (up to 8): invalid UTF-8, often.
    RawText(Vec<u8>),
    /// Any bytes (up to 16).
    Bytes(Vec<u8>),
    /// A message's frame, cut (where modulo its length).
    Cut(ClientMsgChoice, u16),
    /// A length header alone.
    Header(Header),
    /// `quit`.
    Quit,
}

impl Session {
    /// The byte stream.
    pub fn stream(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Opening::Hello(version, name) = self.opening {
            let version = match version {
                Version::Zero => 0,
                Version::Other(v) => u32::from(v),
                Version::Current => wire::PROTOCOL_VERSION,
            };
            let name = name.name().to_owned();
            out.extend_from_slice(&ClientMsg::hello(version, name).to_frame());
        }
        let req = |r: &Option<u8>| r.map(u64::from);
        for step in self.steps.iter().take(48) {
            match step {
                Step::Say { req: r, text, to } => {
                    let text = match text {
                        Said::Text(text) => text.string(),
                        Said::Longest => "x".repeat(MAX_TEXT_LEN),
                        Said::TooLong => "x".repeat(MAX_TEXT_LEN + 1),
                    };
                    let req = req(r);
                    let msg = match to {
                        None => ClientMsg::SendAll { text, req },
                        Some(to) => {
                            let to = match to {
                                To::Watcher => WATCHER,
                                To::WatcherCapitals => "WATCHER",
                                To::Fuzz => "fuzz",
                                To::Nobody => "nobody",
                                To::Probe => PROBE,
                            };
                            ClientMsg::SendPrivate {
                                to: to.into(),
                                text,
                                req,
                            }
                        }
                    };
                    out.extend_from_slice(&msg.to_frame());
                }
                Step::ListUsers(r) => {
                    out.extend_from_slice(&ClientMsg::ListUsers { req: req(r) }.to_frame());
                }
                Step::ListFiles(r) => out.extend_from_slice(
                    &ClientMsg::ListFiles {
                        req: req(r),
                        after: None,
                        limit: None,
                    }
                    .to_frame(),
                ),
                Step::Download(r, file) => {
                    let file = file.name().to_owned();
                    let msg = ClientMsg::Download { file, req: req(r) };
                    out.extend_from_slice(&msg.to_frame());
                }
                Step::Cancel(r, id) => {
                    let msg = ClientMsg::Cancel {
                        id: u64::from(id % 8),
                        req: req(r),
                    };
                    out.extend_from_slice(&msg.to_frame());
                }
                Step::Ping => out.extend_from_slice(&ClientMsg::Ping.to_frame()),
                Step::Any(msg) => out.extend_from_slice(&first_page(msg).to_frame()),
                Step::Hello(name) => {
                    let hello = ClientMsg::hello(wire::PROTOCOL_VERSION, name.name().to_owned());
                    out.extend_from_slice(&hello.to_frame());
                }
                Step::Frame(payload) => match &payload[..payload.len().min(64)] {
                    [] => out.extend_from_slice(&[0, 0, 0, 0]),
                    payload => out.extend_from_slice(&encode_frame(payload)),
                },
                Step::RawText(bytes) => {
                    let mut json = br#"{"type":"send_all","text":""#.to_vec();
                    json.extend_from_slice(&bytes[..bytes.len().min(8)]);
                    json.extend_from_slice(br#""}"#);
                    out.extend_from_slice(&encode_frame(&json));
                }
                Step::Bytes(bytes) => out.extend_from_slice(&bytes[..bytes.len().min(16)]),
                Step::Cut(msg, at) => {
                    let frame = first_page(msg).to_frame();
                    let keep = position(*at, frame.len());
                    out.extend_from_slice(&frame[..keep]);
                }
                Step::Header(header) => {
                    let len = match header {
                        Header::Zero => 0,
                        Header::JustTooLong => MAX_FRAME_LEN as u32 + 1,
                        Header::Max => u32::MAX,
                        Header::Any(len) => *len,
                    };
                    out.extend_from_slice(&len.to_be_bytes());
                }
                Step::Quit => out.extend_from_slice(&ClientMsg::Quit.to_frame()),
            }
        }
        out
    }
}

/// `choice`'s message, but a `list_files` asks for the first page at the default size: the
/// model knows the catalog as one page of one file.
///
/// A hello carries no password and registers nothing, and a `register` gets a password too
/// short to keep: accounts outlive the case, and failed logins slow the next ones down, so
/// either would make one case's answers depend on the cases before it.
fn first_page(choice: &ClientMsgChoice) -> ClientMsg {
    match choice.msg() {
        ClientMsg::ListFiles { req, .. } => ClientMsg::ListFiles {
            req,
            after: None,
            limit: None,
        },
        ClientMsg::Hello { version, name, .. } => ClientMsg::hello(version, name),
        ClientMsg::Register { password, req } => {
            let mut short = password;
            while short.len() >= wire::MIN_PASSWORD_LEN {
                short.pop();
            }
            ClientMsg::Register {
                password: short,
                req,
            }
        }
        msg => msg,
    }
}
