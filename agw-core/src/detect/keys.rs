//! Keys that a prefix alone does not describe: age secret keys (bech32, checked by their
//! checksum), Telegram bot tokens (a bot id, then `:AA…`), Azure storage account keys (a
//! connection string's `AccountKey=`) and passwords in URLs (`postgres://user:pw@host`), read
//! by the [secrets](super::secrets) search.

use super::secrets::{is_key_char, random, run, scrambled};
use super::{Edges, at, preceded_by};

/// `AGE-SECRET-KEY-1`: the human-readable part, in upper case, and bech32's separator.
pub(super) const AGE_PREFIX: &str = "AGE-SECRET-KEY-1";

/// bech32's alphabet, each character's value its index.
const BECH32: &[u8; 32] = b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

/// An age secret key's data: 32 bytes in 52 characters, and a checksum of 6.
const AGE_DATA: usize = 58;

/// The end of the age secret key whose `AGE-SECRET-KEY-1` is at `s`: 58 characters of bech32
/// in upper case whose checksum holds (BIP 173, over the lower-case `age-secret-key-`), not
/// followed by another letter or digit.
pub(super) fn age(text: &[u8], s: usize, edges: Edges<'_>) -> Option<usize> {
    let start = s + AGE_PREFIX.len();
    let mut e = run(text, start, u8::is_ascii_alphanumeric);
    if e > start + AGE_DATA && edges.contains(start + AGE_DATA) {
        e = start + AGE_DATA;
    }
    if e - start != AGE_DATA {
        return None;
    }
    let hrp = b"age-secret-key-";
    let mut chk = 1u32;
    for &c in hrp {
        chk = polymod(chk, c >> 5);
    }
    chk = polymod(chk, 0);
    for &c in hrp {
        chk = polymod(chk, c & 31);
    }
    for &c in &text[start..e] {
        let v = BECH32.iter().position(|&b| b == c)?;
        chk = polymod(chk, v as u8);
    }
    (chk == 1).then_some(e)
}

/// One step of bech32's checksum: `chk` with the 5-bit value `v` appended.
fn polymod(chk: u32, v: u8) -> u32 {
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let top = chk >> 25;
    let mut chk = ((chk & 0x1ff_ffff) << 5) ^ u32::from(v);
    for (i, g) in GEN.iter().enumerate() {
        if (top >> i) & 1 == 1 {
            chk ^= g;
        }
    }
    chk
}

/// Whether what [`age`] says of the key at `s` may change when text is appended.
pub(super) fn age_open(text: &[u8], s: usize) -> bool {
    let start = s + AGE_PREFIX.len();
    let e = run(text, start, u8::is_ascii_alphanumeric);
    e == text.len() && e - start <= AGE_DATA
}

/// A Telegram bot token's secret after its `:AA`: 33 more of `[A-Za-z0-9_-]`.
const TELEGRAM_SECRET: usize = 33;

/// The range of the Telegram bot token whose `:AA` is at `s`: a bot id of 8 to 10 digits
/// before it (with a boundary before the id), and 33 of `[A-Za-z0-9_-]` after, no more.
pub(super) fn telegram(text: &[u8], s: usize, edges: Edges<'_>) -> Option<(usize, usize)> {
    let id = text[s.saturating_sub(11)..s]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let id_start = s - id;
    // The Bot API's URLs glue the token to `bot` (`api.telegram.org/bot123…:AA…/getMe`).
    let bot = id_start >= 3
        && &text[id_start - 3..id_start] == b"bot"
        && !preceded_by(text, id_start - 3, is_key_char);
    let glued = preceded_by(text, id_start, is_key_char) && !edges.contains(id_start) && !bot;
    if !(8..=10).contains(&id) || glued {
        return None;
    }
    let start = s + 3;
    let mut e = run(text, start, |b| is_key_char(*b));
    if e > start + TELEGRAM_SECRET && edges.contains(start + TELEGRAM_SECRET) {
        e = start + TELEGRAM_SECRET;
    }
    let secret = &text[s + 1..e];
    let ok = e - start == TELEGRAM_SECRET && random(secret) && scrambled(secret);
    ok.then_some((id_start, e))
}

/// Where the Telegram bot token whose `:AA` is at `s` would start: its bot id.
pub(super) fn telegram_start(text: &[u8], s: usize) -> usize {
    s - text[s.saturating_sub(11)..s]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// Whether what [`telegram`] says of the `:AA` at `s` may change when text is appended.
pub(super) fn telegram_open(text: &[u8], s: usize) -> bool {
    let start = s + 3;
    let e = run(text, start, |b| is_key_char(*b));
    e == text.len() && e - start <= TELEGRAM_SECRET
}

/// `AccountKey=`, which names the key in an Azure storage connection string.
pub(super) const AZURE_LABEL: &str = "AccountKey=";

/// A storage account key: 64 bytes in base64, 86 characters and `==`.
const AZURE_KEY: usize = 88;

fn is_base64(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/')
}

/// The range of the Azure storage account key after the `AccountKey=` at `s`: 86 of
/// `[A-Za-z0-9+/]` and `==`, with both cases and a digit, not followed by more base64. The
/// label is not reported.
pub(super) fn azure(text: &[u8], s: usize, edges: Edges<'_>) -> Option<(usize, usize)> {
    azure_key_at(text, s + AZURE_LABEL.len(), edges)
}

/// An Azure storage account key starting at `v` (see [`azure`]): its range.
pub(super) fn azure_key_at(text: &[u8], v: usize, edges: Edges<'_>) -> Option<(usize, usize)> {
    let body = run(text, v, is_base64);
    if body - v != AZURE_KEY - 2 || !text[body..].starts_with(b"==") {
        return None;
    }
    let e = body + 2;
    let next = at(text, e);
    let ends = !(is_base64(&next) || next == b'=') || edges.contains(e);
    let key = &text[v..body];
    let mixed = key.iter().any(u8::is_ascii_uppercase)
        && key.iter().any(u8::is_ascii_lowercase)
        && key.iter().any(u8::is_ascii_digit);
    (ends && mixed && random(key)).then_some((v, e))
}

/// Whether what [`azure`] says of the `AccountKey=` at `s` may change when text is appended.
pub(super) fn azure_open(text: &[u8], s: usize) -> bool {
    azure_key_open(text, s + AZURE_LABEL.len())
}

/// Whether what [`azure_key_at`] says of `v` may change when text is appended.
pub(super) fn azure_key_open(text: &[u8], v: usize) -> bool {
    let e = run(text, v, |b| is_base64(b) || *b == b'=');
    e == text.len() && e - v <= AZURE_KEY
}

/// `://`, which starts a URL's authority, where a password may sit (`scheme://user:pw@host`).
pub(super) const URL_LABEL: &str = "://";

/// `:\/\/`: the same in text that escapes its slashes (JSON written by PHP, composer), as a
/// model reads it when that text is a file's contents.
pub(super) const URL_LABEL_ESCAPED: &str = ":\\/\\/";

/// The longest userinfo read for a password: longer runs are not a URL's.
const MAX_USERINFO: usize = 512;

/// Whether `b` ends a URL in text for sure: blanks and control characters and the quotes a
/// string ends with. Anything else may be a password's (`/`, `#`, `?`, `<`, `{`: pasted
/// passwords hold them unescaped, and URL readers such as SQLAlchemy's take them).
fn ends_url(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b'`') || b <= b' ' || b == 0x7f
}

/// Whether `b` may be in a host name, an address or `[v6]`.
fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b'%' | b'[' | b']')
}

/// Documentation's stand-ins for a password (compared in any case): not a secret.
const STAND_INS: [&[u8]; 29] = [
    b"password",
    b"passwd",
    b"pass",
    b"pwd",
    b"pw",
    b"secret",
    b"changeme",
    b"change_me",
    b"mypassword",
    b"yourpassword",
    b"your_password",
    b"example",
    b"redacted",
    b"masked",
    b"hidden",
    b"placeholder",
    b"guest",
    b"token",
    b"apikey",
    b"api_key",
    b"key",
    b"foo",
    b"bar",
    b"baz",
    b"qux",
    b"test",
    b"user",
    b"username",
    // GitHub's password for a token sent as the user name.
    b"x-oauth-basic",
];

/// Words that name a password, for [`naming_words`].
const STAND_IN_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "pass",
    "secret",
    "changeme",
    "placeholder",
    "example",
    "redacted",
    "pwd",
];

/// The words a stand-in is made of: [`STAND_IN_WORDS`], and words around them in
/// documentation (`my`, `your`, `db`, `here`, …).
const STAND_IN_VOCABULARY: [&str; 45] = [
    // The services whose images and docs name their password variables after themselves
    // (`POSTGRES_PASSWORD`, `redis_password`: fourteenth session's accuracy review).
    "postgresql",
    "postgres",
    "pg",
    "mysql",
    "mariadb",
    "mongodb",
    "mongo",
    "redis",
    "rabbitmq",
    "rabbit",
    "amqp",
    "elastic",
    "minio",
    "keycloak",
    "grafana",
    "ldap",
    "smtp",
    "mail",
    "sql",
    "service",
    "default",
    "password",
    "passwd",
    "pass",
    "secret",
    "changeme",
    "change",
    "me",
    "placeholder",
    "example",
    "redacted",
    "pwd",
    "my",
    "your",
    "the",
    "db",
    "database",
    "app",
    "user",
    "admin",
    "root",
    "here",
    "super",
    "new",
    "some",
];

/// The range of the password in the URL whose `://` (or `:\/\/`, `label` long) is at `s`:
/// a scheme before it (a letter, then letters, digits, `+`, `-`, `.`: 2 to 32 of them), then
/// `user:password@host` — the user up to the first `:` (no `/`, `?`, `#` or `[` in it), the
/// password up to the `@` before the host. A password may hold `@`, `:` and `/` unescaped
/// (`p@ss/w:rd@db/app` is `p@ss/w:rd`), so the host is the last `@`'s that reads as one — a
/// name with a letter in it, an IPv4 address or `[v6]` — before any query or fragment of the
/// first, and not an `@` right after a `/` (`/@scope/pkg`, `/@vite/client`, `react@18` are a
/// path's). Not a password: a port and a path (`localhost:8080/a@b`), an scp-style path after
/// an address (`git+ssh://git@github.com:org/repo.git@v1.0`), a stand-in (`password`,
/// `changeme`, `<password>`, `${DB_PASS}`, `{{ pw }}`, `%s`, `*****`, `YOUR_PASSWORD`), a
/// container image's tag before its digest (`docker://node:20-alpine@sha256:…`). Only the
/// password is reported: the scheme, user and host stay readable.
pub(super) fn url_password(text: &[u8], s: usize, label: usize) -> Option<(usize, usize)> {
    let scheme = text[s.saturating_sub(33)..s]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    let first = *text.get(s - scheme)?;
    if !(2..=32).contains(&scheme) || !first.is_ascii_alphabetic() {
        return None;
    }
    let a = s + label;
    let end = run(text, a, |b| !ends_url(*b)).min(a + MAX_USERINFO + 256);
    let rest = &text[a..end];
    let (p, q) = userinfo_password(rest).or_else(|| query_password(rest))?;
    Some((a + p, a + q))
}

/// The password in the userinfo of a URL (`rest`: what follows its `://`), as
/// [`url_password`] reads it, relative to `rest`.
fn userinfo_password(rest: &[u8]) -> Option<(usize, usize)> {
    // The user may be an address (`smtp://alice@example.com:pw@smtp.example.com`).
    let colon = rest
        .iter()
        .position(|&b| matches!(b, b':' | b'/' | b'?' | b'#' | b'['))?;
    if rest[colon] != b':' {
        return None;
    }
    let pw_start = colon + 1;
    // Each `@` a host follows; the query of the first such host ends the search.
    let mut chosen = None;
    let mut stop = rest.len();
    let mut from = pw_start;
    while let Some(k) = memchr::memchr(b'@', &rest[from..stop.max(from)]) {
        let at = from + k;
        from = at + 1;
        if at - pw_start > MAX_USERINFO {
            break;
        }
        let host_end = run(rest, at + 1, |b| is_host_char(*b));
        let host = &rest[at + 1..host_end];
        if host.is_empty() || rest.get(host_end) == Some(&b'@') || rest[at - 1] == b'/' {
            continue;
        }
        // A container image's digest, not a host: `docker://node:20-alpine@sha256:…`.
        let digest = matches!(host, b"sha1" | b"sha256" | b"sha384" | b"sha512")
            && rest.get(host_end) == Some(&b':');
        let ipv4 = host.iter().all(|b| b.is_ascii_digit() || *b == b'.')
            && host.iter().filter(|b| **b == b'.').count() == 3;
        let named = host.iter().any(u8::is_ascii_alphabetic) || host.starts_with(b"[") || ipv4;
        if digest || !named {
            continue;
        }
        if chosen.is_none() {
            // Past this host, a query or a fragment is the URL's (an address there is data).
            let after = &rest[host_end..];
            if let Some(q) = after.iter().position(|b| matches!(b, b'?' | b'#')) {
                stop = host_end + q;
            }
        }
        chosen = Some(at);
    }
    let at = chosen?;
    let password = &rest[pw_start..at];
    let user = &rest[..colon];
    // `host:8080/path`: a port, then a path; `git@host:org/repo`: an scp-style path.
    let port_digits = password.iter().take_while(|b| b.is_ascii_digit()).count();
    let port = (1..=5).contains(&port_digits)
        && matches!(password.get(port_digits), None | Some(b'/' | b'?' | b'#'));
    let scp = user.contains(&b'@') && password.contains(&b'/');
    // A development default, the user's name again (`postgres:postgres`, `root:root`,
    // `app:app`, as compose files and tutorials write them): no secret.
    let default =
        password == user && password.len() <= 16 && password.iter().all(u8::is_ascii_alphabetic);
    if password.is_empty() || port || scp || default || stand_in(password) {
        return None;
    }
    Some((pw_start, at))
}

/// The names a URL's query or a JDBC URL's properties give a password (any case).
const QUERY_PASSWORDS: [&[u8]; 5] = [b"password", b"passwd", b"pwd", b"pass", b"pw"];

/// A password in the query or the `;` properties of a URL without one in its userinfo
/// (`jdbc:postgresql://db/app?user=admin&password=…`, `jdbc:sqlserver://db;user=sa;password=…`,
/// `https://host/login?username=bob&password=…`; red team, twenty-fourth session): the range
/// of the first named value in `rest` (what follows `://`) that is no stand-in.
fn query_password(rest: &[u8]) -> Option<(usize, usize)> {
    let start = rest.iter().position(|b| matches!(b, b'?' | b';' | b'#'))?;
    let mut i = start;
    while i < rest.len() {
        let name_start = i + 1;
        let next = rest[name_start..]
            .iter()
            .position(|b| matches!(b, b'&' | b';' | b'#'))
            .map_or(rest.len(), |k| name_start + k);
        let field = &rest[name_start..next];
        if let Some(eq) = field.iter().position(|&b| b == b'=')
            && QUERY_PASSWORDS
                .iter()
                .any(|n| field[..eq].trim_ascii().eq_ignore_ascii_case(n))
        {
            let value = &field[eq + 1..];
            // A path (`?pwd=/home/alice`: `pwd` is also a working directory), a switch or a
            // number (`?pass=true`) is no password.
            let setting = value.starts_with(b"/")
                || value.starts_with(b"~")
                || value.len() >= 3 && value[..3].eq_ignore_ascii_case(b"%2F")
                || [
                    &b"true"[..],
                    b"false",
                    b"yes",
                    b"no",
                    b"on",
                    b"off",
                    b"null",
                    b"none",
                ]
                .iter()
                .any(|w| value.eq_ignore_ascii_case(w))
                || value.iter().all(u8::is_ascii_digit);
            if !value.is_empty() && !setting && !stand_in(value) {
                return Some((name_start + eq + 1, next));
            }
        }
        i = next;
    }
    None
}

/// The keys of a database connection string besides its password (ADO.NET's, ODBC's,
/// libpq's and MySQL's), lower case, blanks as written: one of them in the same string
/// makes a `Password=` a connection string's.
const CONNECTION_KEYS: [&[u8]; 16] = [
    b"server",
    b"data source",
    b"datasource",
    b"host",
    b"hostname",
    b"address",
    b"addr",
    b"network address",
    b"user id",
    b"userid",
    b"uid",
    b"user",
    b"username",
    b"database",
    b"initial catalog",
    b"dbname",
];

/// How far around a connection string's password its other keys are looked for: within a
/// stream's default window (256 bytes), so that a stream decides as the whole text does.
const CONNECTION_WINDOW: usize = 224;

/// The password in a database connection string whose `Password=` label starts at `s`
/// (`Server=db;Database=app;User ID=sa;Password=…;`, `Host=db;Username=app;Password=…`,
/// libpq's `host=db user=app password=…`; red team, twenty-fourth session): the label starts
/// the text, a line, a quoted string or a `;`-separated field (or, libpq's way, a blank-separated
/// one), another of the string's keys ([`CONNECTION_KEYS`]) is in it, and the value — up to a
/// `;` (a blank in libpq's form), a quote or a line's end, or quoted itself (`'…'`, `"…"`,
/// `{…}`) — is no stand-in ([`stand_in`]). Returns the value's range.
pub(super) fn conn_password(text: &[u8], s: usize) -> Option<(usize, usize)> {
    let v = conn_value_start(text, s)?;
    let blanks = text[..s]
        .iter()
        .rev()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    let before = text[..s - blanks].last();
    let fielded = matches!(
        before,
        None | Some(b';' | b'"' | b'\'' | b'=' | b'\n' | b'\r')
    );
    // libpq's `key=value key=value`: blanks end a field, and its value.
    let spaced = !fielded && blanks > 0;
    let e = conn_value_end(text, v, spaced)?;
    let (vs, ve) = match text.get(v) {
        Some(&q @ (b'\'' | b'"')) if e > v + 1 && text[e - 1] == q => (v + 1, e - 1),
        Some(b'{') if e > v + 1 && text[e - 1] == b'}' => (v + 1, e - 1),
        _ => (v, e),
    };
    let value = text[vs..ve].trim_ascii();
    ((fielded || spaced)
        && !value.is_empty()
        && !stand_in(value)
        && has_connection_key(text, s, e, spaced))
    .then_some((vs, ve))
}

/// Where the value after the `Password=` label starting at `s` starts (past its `=`).
fn conn_value_start(text: &[u8], s: usize) -> Option<usize> {
    memchr::memchr(b'=', &text[s..(s + 10).min(text.len())]).map(|k| s + k + 1)
}

/// Where a connection string's value starting at `v` ends: its closing quote or brace (`None`
/// while none has come), else the first `;` (a blank too where `spaced`), quote, backslash or
/// line break, or the text's end.
fn conn_value_end(text: &[u8], v: usize, spaced: bool) -> Option<usize> {
    let close = match text.get(v)? {
        b'\'' => Some(b'\''),
        b'"' => Some(b'"'),
        b'{' => Some(b'}'),
        _ => None,
    };
    if let Some(close) = close {
        let k = memchr::memchr(close, &text[v + 1..])?;
        return Some(v + 2 + k);
    }
    let k = text[v..].iter().position(|&b| {
        matches!(b, b';' | b'"' | b'\'' | b'\n' | b'\r' | b'\\') || (spaced && b == b' ')
    });
    Some(k.map_or(text.len(), |k| v + k))
}

/// Whether another key of a connection string ([`CONNECTION_KEYS`]) is a field of the same
/// string as the password whose label starts at `s` and whose value ends at `e`: fields split
/// by `;` (and by blanks where `spaced`), within [`CONNECTION_WINDOW`] bytes either side, no
/// line break or `"` between.
fn has_connection_key(text: &[u8], s: usize, e: usize, spaced: bool) -> bool {
    let stop = |b: &u8| matches!(b, b'\n' | b'\r' | b'"');
    let low = s.saturating_sub(CONNECTION_WINDOW);
    let from = text[low..s]
        .iter()
        .rposition(stop)
        .map_or(low, |k| low + k + 1);
    let high = (e + CONNECTION_WINDOW).min(text.len());
    let to = text[e..high].iter().position(stop).map_or(high, |k| e + k);
    text[from..to]
        .split(|&b| b == b';' || (spaced && matches!(b, b' ' | b'\t')))
        .any(|field| {
            field.iter().position(|&b| b == b'=').is_some_and(|eq| {
                let key = field[..eq].trim_ascii();
                CONNECTION_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
            })
        })
}

/// Whether what [`conn_password`] says of the label at `s` may change when text is appended:
/// its value, or the string after it, has not ended.
pub(super) fn conn_password_open(text: &[u8], s: usize) -> bool {
    let Some(v) = conn_value_start(text, s) else {
        return text.len() < s + 10;
    };
    match conn_value_end(text, v, false) {
        None => true,
        Some(e) => {
            let rest = &text[e..];
            rest.len() < CONNECTION_WINDOW
                && !rest.iter().any(|b| matches!(b, b'\n' | b'\r' | b'"'))
        }
    }
}

/// Whether a URL's password is documentation's stand-in for one.
fn stand_in(pw: &[u8]) -> bool {
    // A name in brackets (`<password>`, `[PASSWORD]`, `{password}`, `{{ db_pass }}`,
    // `(pw)`): letters, blanks, `_`, `.`, `-` inside, no digit (`{Xk9pQ2mLz}` is a password).
    let enclosed = |open: &[u8], close: u8| {
        pw.len() > open.len() + 1
            && pw.starts_with(open)
            && pw.ends_with(&[close])
            && pw[open.len()..pw.len() - 1].iter().all(|b| {
                b.is_ascii_alphabetic() || matches!(b, b' ' | b'_' | b'.' | b'-' | b'{' | b'}')
            })
    };
    let env_name = |n: &[u8]| {
        !n.is_empty()
            && n.iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
    };
    // A variable or a template: `${DB_PASS}`, `$DB_PASS`, `%DB_PASS%`.
    let variable = (pw.starts_with(b"${") && pw.ends_with(b"}"))
        || pw.first() == Some(&b'$') && env_name(&pw[1..])
        || pw.len() > 2
            && pw.starts_with(b"%")
            && pw.ends_with(b"%")
            && env_name(&pw[1..pw.len() - 1])
        || enclosed(b"<", b'>')
        || enclosed(b"[", b']')
        || enclosed(b"{", b'}')
        || enclosed(b"(", b')');
    // A format directive: `%s`, `%d`, `%v`, `%(pw)s`.
    let directive = (pw.len() == 2 && pw[0] == b'%' && pw[1].is_ascii_alphabetic())
        || (pw.starts_with(b"%(") && pw.contains(&b')'));
    let one_char = pw.windows(2).all(|w| w[0] == w[1]);
    // An environment variable's name (`MY_SERVICE_PASSWORD`, `API_SECRET_2`): upper case,
    // one of its words naming a password.
    let variable_name = env_name(pw)
        && pw.contains(&b'_')
        && pw.split(|&b| b == b'_').any(|w| {
            STAND_IN_WORDS
                .iter()
                .any(|n| w.eq_ignore_ascii_case(n.as_bytes()))
        });
    variable
        || variable_name
        || directive
        || one_char
        || pw.len() < 3
        || pw.starts_with("…".as_bytes())
        || pw.eq_ignore_ascii_case(b"...")
        || STAND_INS.iter().any(|w| pw.eq_ignore_ascii_case(w))
        || naming_words(pw)
}

/// Whether a password is made of words that name one (`mysecretpassword`, `your-password`,
/// `db-password`, `YOUR_DB_PASSWORD`, `ChangeMe`): letters (and `_`, `-`) that split into
/// [`STAND_IN_VOCABULARY`] words, at least one of them naming a password. `ExampleCorp` or
/// `Summer_2024` do not.
fn naming_words(pw: &[u8]) -> bool {
    let letters: Vec<u8> = pw
        .iter()
        .filter(|b| !matches!(b, b'_' | b'-'))
        .map(u8::to_ascii_lowercase)
        .collect();
    if letters.is_empty() || !letters.iter().all(u8::is_ascii_lowercase) {
        return false;
    }
    let names = |w: &str| STAND_IN_WORDS.contains(&w);
    // Word break over the vocabulary: `ok[i]` = the first `i` letters split, and whether a
    // naming word was among them.
    let n = letters.len();
    let mut ok: Vec<Option<bool>> = vec![None; n + 1];
    ok[0] = Some(false);
    for i in 0..n {
        let Some(named) = ok[i] else { continue };
        for w in STAND_IN_VOCABULARY {
            if letters[i..].starts_with(w.as_bytes()) {
                let j = i + w.len();
                let now = named || names(w);
                ok[j] = Some(ok[j].unwrap_or(false) || now);
            }
        }
    }
    ok[n] == Some(true)
}

/// Whether what [`url_password`] says of the `://` at `s` (`label` long) may change when
/// text is appended: the URL has not ended.
pub(super) fn url_password_open(text: &[u8], s: usize, label: usize) -> bool {
    let a = s + label;
    let e = run(text, a, |b| !ends_url(*b));
    e == text.len() && e - a <= MAX_USERINFO + 256
}

#[cfg(test)]
mod tests {
    use crate::detect::Detector;
    use crate::detect::tests::check;

    #[test]
    fn passwords_in_urls() {
        let cases: &[(&str, &[&str])] = &[
            (
                "DATABASE_URL=postgres://admin:S3cr3t-Pa55@db.internal:5432/app",
                &["S3cr3t-Pa55"],
            ),
            (
                "mongodb+srv://svc:hunter2@cluster0.abcde.mongodb.net/?retryWrites=true",
                &["hunter2"],
            ),
            ("redis://:Xk2pQ9vL@cache:6379/0", &["Xk2pQ9vL"]),
            (
                "git clone https://alice:gho_notATokenBut7x9Q@github.com/org/repo",
                &["gho_notATokenBut7x9Q"],
            ),
            // A token there is the token's detector's (tested with both on, below).
            (
                "https://x-access-token:ghs_16C7e42F292c6912E7710c838347Ae178B4a@github.com/a/b",
                &["ghs_16C7e42F292c6912E7710c838347Ae178B4a"],
            ),
            ("amqp://user:p%40ss%3Aword@rabbit/vhost", &["p%40ss%3Aword"]),
            // The last `@` ends the userinfo; a `:` in the password is the password's.
            ("ftp://bob:a:b@c@files.example.com", &["a:b@c"]),
            (
                "[db](mysql://root:tr0ub4dor@127.0.0.1:3306)",
                &["tr0ub4dor"],
            ),
            ("url = \"postgresql://app:Zq8!w@[::1]:5432/x\"", &["Zq8!w"]),
            // Stand-ins, no password, no host, no scheme, a user alone.
            (
                "postgres://user:password@localhost/db mongodb://username:PASSWORD@host",
                &[],
            ),
            (
                "mysql://root:${MYSQL_ROOT_PASSWORD}@db redis://:<password>@host",
                &[],
            ),
            (
                "postgres://u:{{ db_pass }}@h amqp://guest:guest@localhost:5672",
                &[],
            ),
            ("postgres://user:%s@db/app mysql://u:%(pw)s@h", &[]),
            (
                "postgresql://app:********@h postgres://app:YOUR_DB_PASSWORD@h",
                &[],
            ),
            (
                "ssh://git@github.com/org/repo https://user@example.com/x",
                &[],
            ),
            ("postgres://user:@host http://a:b@ s://x:y@h", &[]),
            ("see https://example.com/a:b@c and time 10://20:30@x", &[]),
            // The accuracy review's: unescaped `/`, `=`, `+`, `$` in a password; escaped
            // slashes; an address as the user; words that are passwords.
            ("postgres://app:aB3/dE+fG9=@db:5432/app", &["aB3/dE+fG9="]),
            ("postgres://app:$ecr3tPw9@db/app", &["$ecr3tPw9"]),
            (
                r#"{"DATABASE_URL":"postgres:\/\/app:Js8xW2nLq@db:5432\/app"}"#,
                &["Js8xW2nLq"],
            ),
            (
                "smtp://alice@example.com:Apw9xK2rTq@smtp.gmail.com:587",
                &["Apw9xK2rTq"],
            ),
            (
                "redis://:prod_db_2024@c mysql://u:correct_horse_battery_staple@h ftp://u:CorrectHorseBatteryStaple@h",
                &[
                    "prod_db_2024",
                    "correct_horse_battery_staple",
                    "CorrectHorseBatteryStaple",
                ],
            ),
            // Stand-ins of documentation and tests, a container image's tag.
            (
                "postgres://postgres:mysecretpassword@db ftp://u:your-password@h ftp://u:db-password@h",
                &[],
            ),
            (
                "https://username:token@github.com/o/r https://t:x-oauth-basic@github.com ftp://u:%DB_PASSWORD%@h",
                &[],
            ),
            (
                "urlparse('https://foo:bar@example.com') postgres://u:p@localhost/db",
                &[],
            ),
            ("uses: docker://node:20-alpine@sha256:0123abcd", &[]),
            // Named after the service (fourteenth session's accuracy review), an environment
            // variable's name; a password that only holds a service's name is one.
            (
                "postgres://postgres:POSTGRES_PASSWORD@localhost:5432/dev redis://:redis_password@h amqp://u:rabbitmq_password@h mysql://u:mysql_password@h postgres://u:postgrespassword@h",
                &[],
            ),
            (
                "postgres://u:MY_SERVICE_PASSWORD@h ftp://u:API_SECRET_2@h",
                &[],
            ),
            (
                "postgres://u:postgres2024x@h mysql://u:MYSQL_9Xq2@h",
                &["postgres2024x", "MYSQL_9Xq2"],
            ),
            // The final regression round's: paths and queries after a port, scp-style paths,
            // IPv6 hosts, a password with `@` and `/`, hosts named `sha…`, bracketed or
            // word-shaped passwords.
            (
                "http://localhost:8080/a@b http://localhost:5173/@vite/client https://cdn.jsdelivr.net:443/npm/react@18",
                &[],
            ),
            (
                "jdbc:mysql://localhost:3306/db?user=root@localhost git+ssh://git@github.com:org/repo.git@v1.0 http://[::1]:8080/@vite/client",
                &[],
            ),
            ("postgres://u:p@ss/w:rd@db/app", &["p@ss/w:rd"]),
            ("postgres://u:Xk9@pQ2/mLz@db/app", &["Xk9@pQ2/mLz"]),
            ("https://u:Qz8pw@registry.npmjs.org/@scope/pkg", &["Qz8pw"]),
            ("https://u:Qz8pw@host.io/x?email=a@b.com", &["Qz8pw"]),
            ("postgres://u:Xk9pQ2mLz@shard1:5432/db", &["Xk9pQ2mLz"]),
            ("{url: postgres://u:Xk9pQ2mLz@db}|x", &["Xk9pQ2mLz"]),
            (
                "ab://u:(Xk9pQ2mLz)@h bc://u:%Xk9pQ2mLz@h cd://u:ExampleCorp@h de://u:Summer_2024@h",
                &["(Xk9pQ2mLz)", "%Xk9pQ2mLz", "ExampleCorp", "Summer_2024"],
            ),
        ];
        for (text, expect) in cases {
            check(Detector::UrlPassword, text, expect);
        }
        // With e-mail on, a password with `@` in it is not read as an address (whose
        // finding would swallow the host).
        let text = "postgres://svc:p@ssW0rd9@db.internal/app";
        let mut got = Vec::new();
        crate::detect::DetectorSet::new([Detector::UrlPassword, Detector::Email])
            .find(text.as_bytes(), &mut got);
        let shown: Vec<&str> = got.iter().map(|f| &text[f.range.clone()]).collect();
        assert_eq!(shown, ["p@ssW0rd9"]);
        // With the token's own detector on, the token is reported as the token it is.
        let text = "https://x-access-token:ghs_16C7e42F292c6912E7710c838347Ae178B4a@github.com/a/b";
        let mut got = Vec::new();
        crate::detect::DetectorSet::new([Detector::UrlPassword, Detector::GithubToken])
            .find(text.as_bytes(), &mut got);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].detector, Detector::GithubToken);
    }

    #[test]
    fn age_secret_keys_by_their_checksum() {
        let key = "AGE-SECRET-KEY-1QUYQJZSTPSXSURCSZYFPX9Q4ZCT3SXG6RVWP68SLYQSJYGEYY5NQ23P5FC";
        let cases: &[(String, &[&str])] = &[
            (format!("# created: 2025-01-01\n{key}\n"), &[key]),
            (format!("SOPS_AGE_KEY={key}"), &[key]),
            // A character changed, a checksum that does not hold, lower case, one character
            // more or less, a placeholder.
            (key.replace("QUYQ", "QUYP"), &[]),
            (
                "AGE-SECRET-KEY-1H4HK3Y98DLE237A6D6QR6M2WUU0T0F9NL5WRF47GEGP8L2CHQLWKCTJDCU".into(),
                &[],
            ),
            (key.to_lowercase(), &[]),
            (format!("{key}Q {}", &key[..key.len() - 1]), &[]),
            (
                "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ".into(),
                &[],
            ),
            ("AGE-SECRET-KEY-1... and AGE-SECRET-KEY-1XXXX".into(), &[]),
        ];
        for (text, expect) in cases {
            check(Detector::AgeSecretKey, text, expect);
        }
    }

    #[test]
    fn telegram_bot_tokens() {
        let t = "4028896554:AAHJsD2RRMKl6CojT0jLiQXEzfuuoCzRHdY";
        let cases: &[(String, &[&str])] = &[
            (format!("TELEGRAM_BOT_TOKEN={t}\n"), &[t]),
            (format!("curl https://api.telegram.org/bot{t}/getMe"), &[t]),
            (format!("\"token\": \"{t}\""), &[t]),
            (
                "12345678:AAHJsD2RRMKl6CojT0jLiQXEzfuuoCzRHdY".into(),
                &["12345678:AAHJsD2RRMKl6CojT0jLiQXEzfuuoCzRHdY"],
            ),
            // Ids of 7 or 11 digits, glued to a word, a secret of 32 or 34, placeholders,
            // times and tickers.
            (
                "1234567:AAHJsD2RRMKl6CojT0jLiQXEzfuuoCzRHdY 12345678901:AAHJsD2RRMKl6CojT0jLiQXEzfuuoCzRHdY".into(),
                &[],
            ),
            (format!("id{t} robot{t}"), &[]),
            (t[..t.len() - 1].to_owned(), &[]),
            (format!("{t}x {t}-"), &[]),
            (
                "123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 123456789:AA_your_bot_token_goes_here_please".into(),
                &[],
            ),
            (
                "20240515:AA 12:30:AA 20240515:AAPL_stock_price_history_download".into(),
                &[],
            ),
        ];
        for (text, expect) in cases {
            check(Detector::TelegramBotToken, text, expect);
        }
    }

    #[test]
    fn azure_storage_keys_in_connection_strings() {
        let k = "DkdfrUnW5gcF+Ha6ili8GjHEAD6/Wj9KfzjsQGMrb9h+ImB+LK777pzNk8cL6j5IXAAjlsHUqJoUD/+Ydua+5Z==";
        let cases: &[(String, &[&str])] = &[
            (
                format!(
                    "DefaultEndpointsProtocol=https;AccountName=demo;AccountKey={k};EndpointSuffix=core.windows.net"
                ),
                &[k],
            ),
            (format!("\"AccountKey={k}\""), &[k]),
            // One character less or more, no padding, placeholders, a word before the label.
            (format!("AccountKey={}==", &k[1..k.len() - 2]), &[]),
            (format!("AccountKey={}A==", &k[..k.len() - 2]), &[]),
            (format!("AccountKey={}", &k[..k.len() - 2]), &[]),
            (format!("AccountKey={k}="), &[]),
            (
                "AccountKey=<your-account-key> AccountKey=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx==".into(),
                &[],
            ),
            (format!("MyAccountKey={k}"), &[]),
            // After the environment's and the SDKs' names for it (guard accuracy review).
            (format!("export AZURE_STORAGE_KEY={k}\n"), &[k]),
            (format!("AZURE_STORAGE_ACCOUNT_KEY=\"{k}\""), &[k]),
            (format!("{{\"storageAccountKey\": \"{k}\"}}"), &[k]),
            (format!("storage_key: '{k}'"), &[k]),
            // Not: another word after the label, a shorter value, `storage` alone.
        (format!("AZURE_STORAGE_ACCESS_KEY={k}"), &[k]),
            (format!("storage_account_access_key = \"{k}\""), &[k]),
                (format!("AZURE_STORAGE_KEYS={k} STORAGE={k} storage_key={}", &k[2..]), &[]),
        ];
        for (text, expect) in cases {
            check(Detector::AzureStorageKey, text, expect);
        }
    }
}
