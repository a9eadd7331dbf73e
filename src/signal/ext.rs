//! The wire of rallypoint's lobby extension (`rallypoint.v1`, see docs/protocol.md): message
//! types from 100 up in Godot's envelope `{"type": int, "id": int, "data": string}`, where `data`
//! holds a JSON object as a string (so a client built on the demo's codec, which wants a string
//! there, can carry it). Only clients that asked for the extension send or receive these.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Extension message types.
pub mod kind {
    /// Client: create a lobby with options.
    pub const CREATE: u64 = 100;
    /// Server: a lobby's state (after joining, and after the host changes it).
    pub const LOBBY: u64 = 101;
    /// Server: this peer's resume token.
    pub const SESSION: u64 = 102;
    /// Client: join by code or name, with a password.
    pub const JOIN: u64 = 103;
    /// Client: ask for a page of the public lobby list.
    pub const LIST: u64 = 104;
    /// Server: a page of the lobby list.
    pub const LOBBIES: u64 = 105;
    /// Client (host): change title, visibility, cap or data.
    pub const UPDATE: u64 = 106;
    /// Client (host): remove the member whose id is the envelope's `id`.
    pub const KICK: u64 = 107;
    /// Client: take back a place after a dropped socket.
    pub const RESUME: u64 = 108;
    /// Server: the place is taken back; queued messages follow.
    pub const RESUMED: u64 = 109;
    /// Client: fresh relay credentials, please (before the last ones expire).
    pub const ICE_REQUEST: u64 = 110;
    /// Server: relay credentials bound to this player and lobby, as `iceServers`.
    pub const ICE_SERVERS: u64 = 111;
    /// Client: join the best open game that matches, or open one ("Play").
    pub const QUICK_JOIN: u64 = 112;
    /// Server: a request failed; the connection stays open.
    pub const ERROR: u64 = 199;
}

/// Options of a new lobby (CREATE).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub public: bool,
    /// 0 = no cap of its own (`signal.max_lobby_members` still applies).
    #[serde(default)]
    pub max_players: u32,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "yes")]
    pub mesh: bool,
    #[serde(default)]
    pub data: Map<String, Value>,
}

fn yes() -> bool {
    true
}

/// An empty CREATE: a private mesh lobby.
impl Default for Create {
    fn default() -> Self {
        Create {
            title: String::new(),
            public: false,
            max_players: 0,
            password: None,
            mesh: true,
            data: Map::new(),
        }
    }
}

/// What the host may change (UPDATE); absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    pub title: Option<String>,
    pub public: Option<bool>,
    pub max_players: Option<u32>,
    pub data: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBy {
    /// A code (case-insensitive) or a lobby name.
    lobby: String,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    filter: Map<String, Value>,
    #[serde(default)]
    page: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuickJoinWith {
    #[serde(default)]
    filter: Map<String, Value>,
    #[serde(default)]
    create: Map<String, Value>,
}

impl QuickJoinWith {
    /// The lobby to open when none matches: CREATE's options, public unless said otherwise
    /// (refused: no one could quick-join it), with the filter's fields in its data so that the
    /// next player with the same filter finds it. Never with a password.
    fn into_command(self) -> Result<ExtCommand, String> {
        let mut create = self.create;
        create.entry("public").or_insert(Value::Bool(true));
        let mut options: Create =
            serde_json::from_value(Value::Object(create)).map_err(|e| format!("create: {e}"))?;
        if !options.public {
            return Err("create.public: a quick-join lobby is public (others find it so)".into());
        }
        if options.password.is_some() {
            return Err("create.password: quick-join never picks a lobby with a password".into());
        }
        for (key, value) in &self.filter {
            match options.data.get(key) {
                Some(set) if set != value => {
                    return Err(format!(
                        "create.data.{key}: differs from the filter's, so no one with this \
                         filter would find the lobby"
                    ));
                }
                _ => {
                    options.data.insert(key.clone(), value.clone());
                }
            }
        }
        Ok(ExtCommand::QuickJoin {
            filter: self.filter,
            create: options,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeWith {
    token: String,
}

/// A request of an extension client.
#[derive(Clone, Debug, PartialEq)]
pub enum ExtCommand {
    Create(Create),
    Join {
        lobby: String,
        password: Option<String>,
    },
    List {
        filter: Map<String, Value>,
        page: u32,
    },
    Update(Update),
    Kick(u64),
    Resume(String),
    IceServers,
    /// Join the fullest (then oldest) public, open, unsealed lobby without a password whose
    /// data matches `filter` and that has room; none: create one with `create`.
    QuickJoin {
        filter: Map<String, Value>,
        create: Create,
    },
}

/// An extension request the hub cannot read: answered with ERROR `invalid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The request's type.
    pub of: u64,
    pub message: String,
}

/// Reads `frame` as an extension request: `None` when its type is below 100 (Godot's protocol).
pub fn decode(frame: &str) -> Option<Result<ExtCommand, Invalid>> {
    let value: Value = serde_json::from_str(frame).ok()?;
    let of = value.get("type")?.as_f64().map(f64::floor)?;
    if of < kind::CREATE as f64 {
        return None;
    }
    let of = of as u64;
    let id = value.get("id").and_then(Value::as_f64).unwrap_or(0.0);
    let data = value.get("data").and_then(Value::as_str).unwrap_or("");
    let invalid = |message: String| Invalid { of, message };
    fn parse<T: for<'de> Deserialize<'de> + Default>(data: &str) -> Result<T, String> {
        if data.is_empty() {
            return Ok(T::default());
        }
        serde_json::from_str(data).map_err(|e| format!("data: {e}"))
    }
    fn parse_required<T: for<'de> Deserialize<'de>>(data: &str) -> Result<T, String> {
        serde_json::from_str(data).map_err(|e| format!("data: {e}"))
    }
    Some(
        match of {
            kind::CREATE => parse(data).map(ExtCommand::Create),
            kind::JOIN => parse_required(data).map(|j: JoinBy| ExtCommand::Join {
                lobby: j.lobby,
                password: j.password,
            }),
            kind::LIST => parse(data).map(|q: ListQuery| ExtCommand::List {
                filter: q.filter,
                page: q.page,
            }),
            kind::UPDATE => parse(data).map(ExtCommand::Update),
            kind::KICK if id >= 0.0 => Ok(ExtCommand::Kick(id.floor() as u64)),
            kind::KICK => Err("id: the member to kick".into()),
            kind::RESUME => parse_required(data).map(|r: ResumeWith| ExtCommand::Resume(r.token)),
            kind::ICE_REQUEST => Ok(ExtCommand::IceServers),
            kind::QUICK_JOIN => parse(data).and_then(QuickJoinWith::into_command),
            _ => Err(format!("unknown extension message type {of}")),
        }
        .map_err(invalid),
    )
}

/// A lobby as the extension shows it (LOBBY, and each entry of LOBBIES).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LobbyInfo {
    pub name: String,
    pub code: String,
    pub title: String,
    pub public: bool,
    pub mesh: bool,
    pub players: usize,
    pub max_players: u32,
    pub password: bool,
    pub sealed: bool,
    pub data: Map<String, Value>,
}

impl LobbyInfo {
    /// Whether a QUICK_JOIN with `filter` may pick it: public, open, no password, room left,
    /// matching data.
    pub fn playable(&self, filter: &Map<String, Value>) -> bool {
        self.public
            && !self.sealed
            && !self.password
            && (self.max_players == 0 || self.players < self.max_players as usize)
            && filter.iter().all(|(k, v)| self.data.get(k) == Some(v))
    }
}

/// Why a request failed (ERROR's `code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a well-formed request, or a value over a limit.
    Invalid,
    NotFound,
    WrongPassword,
    Full,
    Sealed,
    /// Too many requests of this kind; try again later.
    RateLimited,
    AlreadyInLobby,
    NotInLobby,
    NotHost,
    NoSuchPeer,
    TooManyLobbies,
    ResumeFailed,
    /// The server cannot do this just now (in a cluster: the lobby directory is unreachable);
    /// the same request may succeed in a moment.
    Unavailable,
}

/// What the hub tells an extension client.
#[derive(Clone, Debug, PartialEq)]
pub enum ExtEvent<'a> {
    Lobby(&'a LobbyInfo),
    Session {
        token: &'a str,
        resume_grace_secs: u64,
    },
    Lobbies {
        lobbies: &'a [LobbyInfo],
        page: u32,
        pages: u32,
    },
    Resumed {
        id: u32,
        lobby: &'a str,
    },
    /// `{"iceServers": [...], "expires": unix seconds}`, as the shell minted it.
    IceServers(&'a Value),
    Error {
        of: u64,
        code: ErrorCode,
        message: &'a str,
    },
}

/// Whether `frame` (as [`encode`] made it) is a lobby's state (LOBBY).
pub fn is_lobby_state(frame: &str) -> bool {
    frame.starts_with(r#"{"type":101,"#)
}

pub fn encode(event: &ExtEvent) -> String {
    let (of, data) = match event {
        ExtEvent::Lobby(info) => (kind::LOBBY, serde_json::to_value(info)),
        ExtEvent::Session {
            token,
            resume_grace_secs,
        } => (
            kind::SESSION,
            Ok(serde_json::json!({"token": token, "resume_grace": resume_grace_secs})),
        ),
        ExtEvent::Lobbies {
            lobbies,
            page,
            pages,
        } => (
            kind::LOBBIES,
            Ok(serde_json::json!({"lobbies": lobbies, "page": page, "pages": pages})),
        ),
        ExtEvent::Resumed { id, lobby } => (
            kind::RESUMED,
            Ok(serde_json::json!({"id": id, "lobby": lobby})),
        ),
        ExtEvent::IceServers(servers) => (kind::ICE_SERVERS, Ok((*servers).clone())),
        ExtEvent::Error { of, code, message } => (
            kind::ERROR,
            Ok(serde_json::json!({"of": of, "code": code, "message": message})),
        ),
    };
    let data = data.expect("extension events serialise").to_string();
    let data = serde_json::to_string(&data).expect("strings serialise");
    format!("{{\"type\":{of},\"id\":0,\"data\":{data}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u64, id: u64, data: &str) -> String {
        serde_json::json!({"type": kind, "id": id, "data": data}).to_string()
    }

    #[test]
    fn base_types_are_not_extension_messages() {
        for t in [0, 4, 7, 8, 10, 99] {
            assert_eq!(decode(&frame(t, 0, "")), None, "type {t}");
        }
        assert_eq!(decode("not json"), None);
        // GDScript sends floats.
        assert!(matches!(
            decode(r#"{"type":104.0,"id":0.0,"data":""}"#),
            Some(Ok(ExtCommand::List { page: 0, .. }))
        ));
    }

    #[test]
    fn requests_decode_with_defaults() {
        let create = decode(&frame(100, 0, "")).unwrap().unwrap();
        assert_eq!(create, ExtCommand::Create(Create::default()));
        assert!(Create::default().mesh);
        let create = decode(&frame(
            100,
            0,
            r#"{"title":"Duel","public":true,"max_players":2,"password":"pw","mesh":false,"data":{"mode":"ctf"}}"#,
        ))
        .unwrap()
        .unwrap();
        let ExtCommand::Create(c) = create else {
            panic!()
        };
        assert_eq!(
            (c.title.as_str(), c.public, c.max_players, c.mesh),
            ("Duel", true, 2, false)
        );
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.data["mode"], "ctf");
        assert_eq!(
            decode(&frame(103, 0, r#"{"lobby":"abc234","password":"x"}"#)),
            Some(Ok(ExtCommand::Join {
                lobby: "abc234".into(),
                password: Some("x".into())
            }))
        );
        assert_eq!(
            decode(&frame(107, 12345, "")),
            Some(Ok(ExtCommand::Kick(12345)))
        );
        assert_eq!(
            decode(&frame(108, 0, r#"{"token":"t"}"#)),
            Some(Ok(ExtCommand::Resume("t".into())))
        );
    }

    #[test]
    fn a_quick_join_opens_a_public_lobby_carrying_its_filter() {
        let quick = |data: &str| decode(&frame(112, 0, data)).unwrap();
        let Ok(ExtCommand::QuickJoin { filter, create }) = quick("") else {
            panic!()
        };
        assert!(filter.is_empty() && create.public && create.mesh && create.password.is_none());
        let Ok(ExtCommand::QuickJoin { filter, create }) = quick(
            r#"{"filter":{"mode":"ctf"},"create":{"title":"CTF","max_players":4,"data":{"map":"dune"}}}"#,
        ) else {
            panic!()
        };
        assert_eq!(filter["mode"], "ctf");
        assert_eq!((create.title.as_str(), create.max_players), ("CTF", 4));
        assert_eq!(
            (create.data["mode"].as_str(), create.data["map"].as_str()),
            (Some("ctf"), Some("dune"))
        );
        for (data, key) in [
            (r#"{"create":{"password":"pw"}}"#, "create.password"),
            (r#"{"create":{"public":false}}"#, "create.public"),
            (
                r#"{"filter":{"mode":"ctf"},"create":{"data":{"mode":"dm"}}}"#,
                "create.data.mode",
            ),
            (r#"{"create":{"colour":"red"}}"#, "create:"),
            (r#"{"filter":[]}"#, "data:"),
        ] {
            let got = quick(data);
            assert!(
                matches!(&got, Err(Invalid { of: 112, message }) if message.starts_with(key)),
                "{data}: {got:?}"
            );
        }
    }

    #[test]
    fn bad_requests_are_invalid_not_dropped() {
        for (t, data) in [
            (100, "{"),
            (100, r#"{"colour":"red"}"#),
            (100, r#"{"max_players":-1}"#),
            (103, ""),
            (104, r#"{"page":"two"}"#),
            (108, "{}"),
            (150, ""),
        ] {
            let got = decode(&frame(t, 0, data)).unwrap();
            assert!(
                matches!(got, Err(Invalid { of, .. }) if of == t),
                "{t} {data}"
            );
        }
    }

    #[test]
    fn events_keep_the_demo_envelope() {
        let out = encode(&ExtEvent::Error {
            of: 103,
            code: ErrorCode::WrongPassword,
            message: "wrong password",
        });
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["type"], 199);
        assert_eq!(v["id"], 0);
        let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["code"], "wrong_password");
        assert_eq!(data["of"], 103);
    }
}
