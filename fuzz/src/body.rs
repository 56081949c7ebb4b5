//! Anthropic Messages and OpenAI Chat Completions request bodies, built from arbitrary parts:
//! every content shape the guard reads (strings, text blocks, nested tool results, tool inputs,
//! documents, OpenAI tool calls) and several it must skip (thinking, images), with keys in any
//! order and sometimes escaped. Bodies are well-formed (shape errors are rare, so that most
//! inputs reach the rules); targets overwrite bytes to get malformed ones.

use crate::text::Text;
use arbitrary::Arbitrary;

/// Which API the body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Api {
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
    /// `POST /v1/chat/completions`.
    Completions,
}

/// A request body.
#[derive(Debug, Clone, Arbitrary)]
pub struct Request {
    /// The route.
    pub api: Api,
    /// `model`.
    pub model: Option<Text>,
    /// `system`.
    pub system: Option<Content>,
    /// `messages`.
    pub messages: Vec<Message>,
    /// Other top-level members, written before `messages`.
    pub before: Vec<(Text, Value)>,
    /// Other top-level members, written after `messages`.
    pub after: Vec<(Text, Value)>,
    /// Write known keys with a `\u` escape in them.
    pub escape_keys: bool,
    /// Whitespace style.
    pub pretty: bool,
}

/// A message.
#[derive(Debug, Clone, Arbitrary)]
pub struct Message {
    /// `role`, written after the content when `role_last`.
    pub role: Role,
    /// Where `role` goes.
    pub role_last: bool,
    /// `content`.
    pub content: Content,
    /// OpenAI `tool_calls`.
    pub tool_calls: Option<Vec<ToolCall>>,
    /// OpenAI legacy `function_call.arguments`.
    pub function_call: Option<Text>,
    /// Other members.
    pub extra: Vec<(Text, Value)>,
}

/// A message role.
#[derive(Debug, Clone, Arbitrary)]
pub enum Role {
    /// `user`.
    User,
    /// `assistant`.
    Assistant,
    /// `system`.
    System,
    /// `developer`.
    Developer,
    /// `tool`.
    Tool,
    /// Any other string.
    Other(Text),
}

/// A `content` (or `system`) value.
#[derive(Debug, Clone, Arbitrary)]
pub enum Content {
    /// A string.
    Str(Text),
    /// An array of blocks.
    Blocks(Vec<Block>),
    /// `null`.
    Null,
}

/// A content block.
#[derive(Debug, Clone, Arbitrary)]
pub enum Block {
    /// `{"type":"text","text":...}`.
    Text { text: Text, type_last: bool },
    /// `tool_use`, `server_tool_use` or `mcp_tool_use` with an `input`.
    ToolUse {
        kind: u8,
        name: Text,
        input: Value,
        type_last: bool,
    },
    /// `tool_result` (or `web_search_tool_result`) with nested content.
    ToolResult {
        web: bool,
        content: Option<Content>,
        type_last: bool,
    },
    /// `thinking`: never read, never changed.
    Thinking { thinking: Text, signature: Text },
    /// `image`: never read.
    Image { data: Text },
    /// `document` with a text or content source, title and context.
    Document {
        source: DocSource,
        title: Option<Text>,
        context: Option<Text>,
        type_last: bool,
    },
    /// A block type agw does not know: its `text` and `content` are read.
    Unknown {
        ty: Text,
        text: Option<Text>,
        content: Option<Value>,
    },
}

/// A document's `source`.
#[derive(Debug, Clone, Arbitrary)]
pub enum DocSource {
    /// `{"type":"text","media_type":"text/plain","data":...}`.
    Text(Text),
    /// `{"type":"content","content":[...]}`.
    Content(Value),
    /// `{"type":"base64","data":...}`: not read.
    Base64(Text),
}

/// An OpenAI tool call.
#[derive(Debug, Clone, Arbitrary)]
pub struct ToolCall {
    /// `function.name`.
    pub name: Text,
    /// `function.arguments`.
    pub arguments: Value,
}

/// Any JSON value.
#[derive(Debug, Clone, Arbitrary)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float, written with an exponent.
    Float(i16, u8),
    /// A string.
    Str(Text),
    /// An array.
    Arr(Vec<Value>),
    /// An object.
    Obj(Vec<(Text, Value)>),
}

/// How a request is presented, for the other prompt-bearing APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// As built, for its [`Api`].
    Native,
    /// `{"requests":[{"custom_id":"a","params":BODY},{"custom_id":"b","params":BODY}]}`.
    Batch,
    /// `messages` written as `input` and `system` as `instructions` (OpenAI Responses).
    Responses,
    /// `{"model":…,"prompt":[CONTENT…],"input":[CONTENT…],"suffix":CONTENT}` with each
    /// message's content: one body for legacy completions, complete and embeddings.
    Prompts,
}

/// Writes JSON with separators and optional pretty whitespace.
struct W {
    out: Vec<u8>,
    pretty: bool,
    escape_keys: bool,
    /// Write Responses keys (`input`, `instructions`) for Messages ones.
    responses: bool,
    first: Vec<bool>,
}

impl W {
    fn sep(&mut self) {
        if let Some(first) = self.first.last_mut() {
            if !std::mem::replace(first, false) {
                self.out.push(b',');
            }
            if self.pretty {
                self.out.extend_from_slice(b"\n ");
            }
        }
    }

    fn open(&mut self, c: u8) {
        self.out.push(c);
        self.first.push(true);
    }

    fn close(&mut self, c: u8) {
        self.first.pop();
        if self.pretty {
            self.out.push(b'\n');
        }
        self.out.push(c);
    }

    /// A known key, escaped (its first letter as `\u00XX`) when asked.
    fn key(&mut self, k: &str) {
        let k = match k {
            "messages" if self.responses => "input",
            "system" if self.responses => "instructions",
            k => k,
        };
        self.sep();
        self.out.push(b'"');
        if self.escape_keys {
            self.out
                .extend_from_slice(format!("\\u{:04x}", k.as_bytes()[0]).as_bytes());
            self.out.extend_from_slice(&k.as_bytes()[1..]);
        } else {
            self.out.extend_from_slice(k.as_bytes());
        }
        self.out
            .extend_from_slice(if self.pretty { b"\": " } else { b"\":" });
    }

    fn text_key(&mut self, k: &Text) {
        self.sep();
        k.render_quoted(&mut self.out);
        self.out.push(b':');
    }

    fn str(&mut self, s: &str) {
        self.out.push(b'"');
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'"');
    }

    fn text(&mut self, t: &Text) {
        t.render_quoted(&mut self.out);
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.out.extend_from_slice(b"null"),
            Value::Bool(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => self.out.extend_from_slice(i.to_string().as_bytes()),
            Value::Float(m, e) => self
                .out
                .extend_from_slice(format!("{m}.5e-{}", e % 40).as_bytes()),
            Value::Str(t) => self.text(t),
            Value::Arr(items) => {
                self.open(b'[');
                for it in items {
                    self.sep();
                    self.value(it);
                }
                self.close(b']');
            }
            Value::Obj(members) => {
                self.open(b'{');
                for (k, v) in members {
                    self.text_key(k);
                    self.value(v);
                }
                self.close(b'}');
            }
        }
    }

    fn content(&mut self, c: &Content) {
        match c {
            Content::Str(t) => self.text(t),
            Content::Blocks(blocks) => {
                self.open(b'[');
                for b in blocks {
                    self.sep();
                    self.block(b);
                }
                self.close(b']');
            }
            Content::Null => self.out.extend_from_slice(b"null"),
        }
    }

    fn typed(&mut self, ty: &str, type_last: bool, body: impl FnOnce(&mut Self)) {
        self.open(b'{');
        if !type_last {
            self.key("type");
            self.str(ty);
        }
        body(self);
        if type_last {
            self.key("type");
            self.str(ty);
        }
        self.close(b'}');
    }

    fn block(&mut self, b: &Block) {
        match b {
            Block::Text { text, type_last } => self.typed("text", *type_last, |w| {
                w.key("text");
                w.text(text);
            }),
            Block::ToolUse {
                kind,
                name,
                input,
                type_last,
            } => {
                let ty = ["tool_use", "server_tool_use", "mcp_tool_use"][*kind as usize % 3];
                self.typed(ty, *type_last, |w| {
                    w.key("id");
                    w.str("toolu_01");
                    w.key("name");
                    w.text(name);
                    w.key("input");
                    w.value(input);
                });
            }
            Block::ToolResult {
                web,
                content,
                type_last,
            } => {
                let ty = if *web {
                    "web_search_tool_result"
                } else {
                    "tool_result"
                };
                self.typed(ty, *type_last, |w| {
                    w.key("tool_use_id");
                    w.str("toolu_01");
                    if let Some(c) = content {
                        w.key("content");
                        w.content(c);
                    }
                });
            }
            Block::Thinking {
                thinking,
                signature,
            } => self.typed("thinking", false, |w| {
                w.key("thinking");
                w.text(thinking);
                w.key("signature");
                w.text(signature);
            }),
            Block::Image { data } => self.typed("image", false, |w| {
                w.key("source");
                w.open(b'{');
                w.key("type");
                w.str("base64");
                w.key("media_type");
                w.str("image/png");
                w.key("data");
                w.text(data);
                w.close(b'}');
            }),
            Block::Document {
                source,
                title,
                context,
                type_last,
            } => self.typed("document", *type_last, |w| {
                w.key("source");
                w.open(b'{');
                match source {
                    DocSource::Text(t) => {
                        w.key("type");
                        w.str("text");
                        w.key("media_type");
                        w.str("text/plain");
                        w.key("data");
                        w.text(t);
                    }
                    DocSource::Content(v) => {
                        w.key("type");
                        w.str("content");
                        w.key("content");
                        w.value(v);
                    }
                    DocSource::Base64(t) => {
                        w.key("type");
                        w.str("base64");
                        w.key("data");
                        w.text(t);
                    }
                }
                w.close(b'}');
                if let Some(t) = title {
                    w.key("title");
                    w.text(t);
                }
                if let Some(t) = context {
                    w.key("context");
                    w.text(t);
                }
            }),
            Block::Unknown { ty, text, content } => {
                self.open(b'{');
                self.key("type");
                self.text(ty);
                if let Some(t) = text {
                    self.key("text");
                    self.text(t);
                }
                if let Some(c) = content {
                    self.key("content");
                    self.value(c);
                }
                self.close(b'}');
            }
        }
    }

    fn message(&mut self, m: &Message) {
        self.open(b'{');
        let role = |w: &mut Self| {
            w.key("role");
            match &m.role {
                Role::User => w.str("user"),
                Role::Assistant => w.str("assistant"),
                Role::System => w.str("system"),
                Role::Developer => w.str("developer"),
                Role::Tool => w.str("tool"),
                Role::Other(t) => w.text(t),
            }
        };
        if !m.role_last {
            role(self);
        }
        self.key("content");
        self.content(&m.content);
        if let Some(calls) = &m.tool_calls {
            self.key("tool_calls");
            self.open(b'[');
            for c in calls {
                self.sep();
                self.open(b'{');
                self.key("id");
                self.str("call_1");
                self.key("type");
                self.str("function");
                self.key("function");
                self.open(b'{');
                self.key("name");
                self.text(&c.name);
                self.key("arguments");
                self.value(&c.arguments);
                self.close(b'}');
                self.close(b'}');
            }
            self.close(b']');
        }
        if let Some(args) = &m.function_call {
            self.key("function_call");
            self.open(b'{');
            self.key("name");
            self.str("f");
            self.key("arguments");
            self.text(args);
            self.close(b'}');
        }
        for (k, v) in &m.extra {
            self.text_key(k);
            self.value(v);
        }
        if m.role_last {
            role(self);
        }
        self.close(b'}');
    }
}

impl Request {
    /// The body's bytes.
    pub fn render(&self) -> Vec<u8> {
        self.render_as(Shape::Native)
    }

    /// The body's bytes, presented as `shape`.
    pub fn render_as(&self, shape: Shape) -> Vec<u8> {
        let mut w = W {
            out: Vec::new(),
            pretty: self.pretty,
            escape_keys: self.escape_keys,
            responses: shape == Shape::Responses,
            first: Vec::new(),
        };
        match shape {
            Shape::Native | Shape::Responses => {}
            Shape::Batch => {
                let body = self.render_as(Shape::Native);
                w.open(b'{');
                w.key("requests");
                w.open(b'[');
                for id in ["a", "b"] {
                    w.sep();
                    w.open(b'{');
                    w.key("custom_id");
                    w.str(id);
                    w.key("params");
                    w.out.extend_from_slice(&body);
                    w.close(b'}');
                }
                w.close(b']');
                w.close(b'}');
                return w.out;
            }
            Shape::Prompts => {
                w.open(b'{');
                if let Some(m) = &self.model {
                    w.key("model");
                    w.text(m);
                }
                for key in ["prompt", "input"] {
                    w.key(key);
                    w.open(b'[');
                    for m in &self.messages {
                        w.sep();
                        w.content(&m.content);
                    }
                    w.close(b']');
                }
                if let Some(m) = self.messages.first() {
                    w.key("suffix");
                    w.content(&m.content);
                }
                w.close(b'}');
                return w.out;
            }
        }
        w.open(b'{');
        if let Some(m) = &self.model {
            w.key("model");
            w.text(m);
        }
        w.key("max_tokens");
        w.out.extend_from_slice(b"1024");
        for (k, v) in &self.before {
            w.text_key(k);
            w.value(v);
        }
        if let Some(s) = &self.system {
            w.key("system");
            w.content(s);
        }
        w.key("messages");
        w.open(b'[');
        for m in &self.messages {
            w.sep();
            w.message(m);
        }
        w.close(b']');
        for (k, v) in &self.after {
            w.text_key(k);
            w.value(v);
        }
        w.close(b'}');
        w.out
    }
}
