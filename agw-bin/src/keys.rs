//! `agw keys`: create, list and revoke client keys in the configured store.
//!
//! ```text
//! agw keys --config FILE create --name alice [--team platform] [--expires 90d]
//! agw keys --config FILE list
//! agw keys --config FILE revoke alice
//! ```
//!
//! `create` prints the new key once, as the **last line of stdout** (scripts take it with
//! `tail -n1`); only its SHA-256 is stored. A name whose key is revoked or expired can be
//! given a new key (the old record is replaced, and its key stays refused); an active one
//! cannot. `list` prints one line per key (never a key or a
//! hash), with today's and this month's spend when a limiter is at hand.
//!
//! # Example
//!
//! ```
//! use agw_bin::keys::{KeysCommand, run};
//! use agw_tower::auth::FileKeyStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let store = FileKeyStore::in_memory();
//! let cmd = KeysCommand::parse(&["create".into(), "--name".into(), "alice".into()]).unwrap();
//! let mut out = Vec::new();
//! run(&cmd, &store, None, 1_800_000_000, &mut out).await.unwrap();
//! let out = String::from_utf8(out).unwrap();
//! assert!(out.lines().last().unwrap().starts_with("agw_"));
//! # });
//! ```

use agw_tower::auth::key::{self, KeyRecord};
use agw_tower::auth::{KeyStore, StoreError};
use agw_tower::limit::{Limiter, Scope, utc_time};
use std::io::Write;
use std::time::Duration;

/// Usage text for `agw keys`.
pub const HELP: &str = "\
agw keys --config FILE create --name NAME [--team TEAM] [--expires DURATION]
agw keys --config FILE list
agw keys --config FILE revoke NAME

DURATION: a number and a unit, s m h d (e.g. 90d, 12h). The new key is printed once, as the
last line of stdout; agw stores only its SHA-256.";

/// A parsed `agw keys` subcommand (the `--config FILE` part is the caller's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysCommand {
    /// Creates a key.
    Create {
        /// Unique name.
        name: String,
        /// Team.
        team: Option<String>,
        /// Lifetime.
        expires: Option<Duration>,
    },
    /// Lists keys.
    List,
    /// Revokes a key by name.
    Revoke {
        /// The key's name.
        name: String,
    },
}

impl KeysCommand {
    /// Parses the words after `agw keys` (and after `--config FILE`, which the caller takes).
    ///
    /// # Errors
    ///
    /// One line naming the problem.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let Some((cmd, rest)) = args.split_first() else {
            return Err(format!("keys: a subcommand is needed\n{HELP}"));
        };
        match cmd.as_str() {
            "create" => {
                let (mut name, mut team, mut expires) = (None, None, None);
                let mut it = rest.iter();
                while let Some(flag) = it.next() {
                    let (flag, inline) = match flag.split_once('=') {
                        Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                        _ => (flag.as_str(), None),
                    };
                    let mut value = || {
                        inline
                            .clone()
                            .or_else(|| it.next().cloned())
                            .ok_or_else(|| format!("keys create: {flag} needs a value"))
                    };
                    match flag {
                        "--name" => name = Some(value()?),
                        "--team" => team = Some(value()?),
                        "--expires" => expires = Some(parse_duration(&value()?)?),
                        other => return Err(format!("keys create: unknown argument `{other}`")),
                    }
                }
                let name = name.ok_or("keys create: --name NAME is required")?;
                check_name(&name)?;
                if name.eq_ignore_ascii_case(agw_tower::auth::ANONYMOUS) {
                    // Every caller without a credential is `anonymous` (where allowed): a key
                    // of that name would share their limits, budgets and access (sixth review).
                    return Err(format!(
                        "keys: `{name}` is the name of callers without a credential; choose another"
                    ));
                }
                if let Some(t) = &team {
                    check_name(t)?;
                }
                Ok(KeysCommand::Create {
                    name,
                    team,
                    expires,
                })
            }
            "list" if rest.is_empty() => Ok(KeysCommand::List),
            "revoke" => match rest {
                [name] => Ok(KeysCommand::Revoke { name: name.clone() }),
                _ => Err("keys revoke: exactly one NAME".into()),
            },
            other => Err(format!("keys: unknown subcommand `{other}`\n{HELP}")),
        }
    }
}

/// Names and teams appear in logs, metrics labels and Redis keys: keep them plain.
fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        // Escaped: a name holding a newline or a terminal escape stays one line, as typed.
        Err(format!(
            "keys: invalid name `{}` (1-64 of letters, digits, - _ . @)",
            s.escape_debug()
        ))
    }
}

/// Parses `90d`, `12h`, `30m`, `3600s`.
///
/// # Errors
///
/// Not a positive number with one of those units.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{s}` (use e.g. 90d, 12h, 30m, 3600s)");
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(bad());
    }
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

/// Runs `cmd` against `store` at `now` (Unix seconds), writing to `out`. `usage`, when given,
/// adds each key's spend to `list`: give it only where spend is shared (Redis), since a limiter
/// of this process's own knows nothing of what the serving agw counted.
///
/// # Errors
///
/// One line naming the problem (a name in use, an unknown name, a store failure).
pub async fn run(
    cmd: &KeysCommand,
    store: &dyn KeyStore,
    usage: Option<&Limiter>,
    now: u64,
    out: &mut dyn Write,
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    match cmd {
        KeysCommand::Create {
            name,
            team,
            expires,
        } => {
            let (secret, hash) = key::generate().map_err(|_| "no system randomness".to_owned())?;
            let expires = expires.map(|d| now + d.as_secs());
            let record = KeyRecord {
                name: name.as_str().into(),
                team: team.as_deref().map(Into::into),
                hash: hash.to_hex(),
                created: now,
                expires,
                revoked: false,
            };
            store.insert(record).await.map_err(|e| match e {
                StoreError::Exists(n) => {
                    format!("a key named `{n}` is active (revoke it first or pick another name)")
                }
                e => e.to_string(),
            })?;
            writeln!(
                out,
                "created key `{name}`{}{}; it is shown once, store it now:",
                team.as_ref()
                    .map(|t| format!(", team `{t}`"))
                    .unwrap_or_default(),
                expires
                    .map(|e| format!(", expires {}", utc_time(e)))
                    .unwrap_or_default(),
            )
            .map_err(io)?;
            writeln!(out, "{secret}").map_err(io)?;
        }
        KeysCommand::List => {
            let keys = store.list().await.map_err(|e| e.to_string())?;
            writeln!(
                out,
                "{:<24} {:<16} {:<20} {:<20} {:<8}{}",
                "NAME",
                "TEAM",
                "CREATED",
                "EXPIRES",
                "STATUS",
                if usage.is_some() {
                    " USD TODAY  USD MONTH"
                } else {
                    ""
                }
            )
            .map_err(io)?;
            for k in keys {
                let status = if k.revoked {
                    "revoked"
                } else if !k.is_valid_at(now) {
                    "expired"
                } else {
                    "active"
                };
                let spend = match usage {
                    Some(l) => match l.spent(&Scope::Key(k.name.clone()), now).await {
                        Ok(s) => format!(
                            " {:>9.4} {:>10.4}",
                            s.usd_micros_today as f64 / 1e6,
                            s.usd_micros_month as f64 / 1e6
                        ),
                        Err(_) => " (usage unavailable)".into(),
                    },
                    None => String::new(),
                };
                writeln!(
                    out,
                    "{:<24} {:<16} {:<20} {:<20} {:<8}{spend}",
                    k.name,
                    k.team.as_deref().unwrap_or("-"),
                    utc_time(k.created),
                    k.expires.map(utc_time).unwrap_or_else(|| "never".into()),
                    status
                )
                .map_err(io)?;
            }
        }
        KeysCommand::Revoke { name } => {
            if !store
                .revoke(name.clone())
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no key named `{name}`"));
            }
            writeln!(out, "revoked key `{name}`").map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agw_tower::auth::FileKeyStore;
    use agw_tower::auth::key::KeyHash;
    use agw_tower::limit::{LimitPolicy, MemoryStore};
    use std::sync::Arc;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parsing() {
        let cases: &[(&str, Result<KeysCommand, &str>)] = &[
            (
                "create --name alice --team platform --expires 90d",
                Ok(KeysCommand::Create {
                    name: "alice".into(),
                    team: Some("platform".into()),
                    expires: Some(Duration::from_secs(90 * 86_400)),
                }),
            ),
            (
                "create --name=bob",
                Ok(KeysCommand::Create {
                    name: "bob".into(),
                    team: None,
                    expires: None,
                }),
            ),
            ("list", Ok(KeysCommand::List)),
            (
                "revoke alice",
                Ok(KeysCommand::Revoke {
                    name: "alice".into(),
                }),
            ),
            ("create", Err("keys create: --name NAME is required")),
            (
                "create --name a:b",
                Err("keys: invalid name `a:b` (1-64 of letters, digits, - _ . @)"),
            ),
            (
                "create --name Anonymous",
                Err(
                    "keys: `Anonymous` is the name of callers without a credential; choose another",
                ),
            ),
            (
                "create --name a --expires 0d",
                Err("invalid duration `0d` (use e.g. 90d, 12h, 30m, 3600s)"),
            ),
            (
                "create --name a --expires 5y",
                Err("invalid duration `5y` (use e.g. 90d, 12h, 30m, 3600s)"),
            ),
            ("revoke", Err("keys revoke: exactly one NAME")),
        ];
        for (input, want) in cases {
            let got = KeysCommand::parse(&args(input));
            match want {
                Ok(w) => assert_eq!(got.as_ref(), Ok(w), "{input}"),
                Err(w) => assert_eq!(got.unwrap_err(), *w, "{input}"),
            }
        }
    }

    #[tokio::test]
    async fn create_list_revoke() {
        let store = FileKeyStore::in_memory();
        let limiter = Limiter::new(LimitPolicy::default(), Arc::new(MemoryStore::new()));
        let now = 1_795_869_296;
        let mut out = Vec::new();
        let create =
            KeysCommand::parse(&args("create --name alice --team platform --expires 1d")).unwrap();
        run(&create, &store, None, now, &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        let secret = text.lines().last().unwrap();
        assert!(secret.starts_with("agw_") && secret.len() == 47, "{text}");
        assert!(text.contains("expires 2026-11-29T12:34:56Z"), "{text}");
        let rec = store.lookup(KeyHash::of(secret)).await.unwrap().unwrap();
        assert_eq!(rec.team.as_deref(), Some("platform"));
        // The same name again, while active: one clear line.
        let e = run(&create, &store, None, now, &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(
            e,
            "a key named `alice` is active (revoke it first or pick another name)"
        );

        let mut out = Vec::new();
        run(&KeysCommand::List, &store, Some(&limiter), now, &mut out)
            .await
            .unwrap();
        let list = String::from_utf8(out).unwrap();
        assert!(
            list.contains("alice") && list.contains("active") && list.contains("0.0000"),
            "{list}"
        );
        assert!(!list.contains(secret) && !list.contains(&rec.hash));

        let revoke = KeysCommand::parse(&args("revoke alice")).unwrap();
        run(&revoke, &store, None, now, &mut Vec::new())
            .await
            .unwrap();
        let mut out = Vec::new();
        run(&KeysCommand::List, &store, None, now, &mut out)
            .await
            .unwrap();
        assert!(String::from_utf8(out).unwrap().contains("revoked"));
        let e = run(
            &KeysCommand::Revoke {
                name: "nobody".into(),
            },
            &store,
            None,
            now,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(e, "no key named `nobody`");

        // Revoked: the name takes a new key, and the old key stays refused.
        let mut out = Vec::new();
        run(&create, &store, None, now + 60, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let again = text.lines().last().unwrap();
        assert_ne!(again, secret);
        let rec = store.lookup(KeyHash::of(again)).await.unwrap().unwrap();
        assert!(rec.is_valid_at(now + 60) && &*rec.name == "alice");
        assert_eq!(store.lookup(KeyHash::of(secret)).await.unwrap(), None);
    }
}
