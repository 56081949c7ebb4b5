use super::*;
use agw_core::guard::Decision;
use agw_core::provider::Credentials;
use agw_core::route::RouteKind;

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed");

fn seed(name: &str) -> String {
    std::fs::read_to_string(format!("{SEED}/manifests-{name}.yaml")).unwrap()
}

fn rejects_credit_card(b: &Backend) -> bool {
    // Also written with Cyrillic look-alikes (с, е, а) and with more than a space between the
    // words: the seed's phrase gets `confusables` and `whitespace_insensitive` by default.
    [
        "What is a credit card",
        "What is a \u{0441}r\u{0435}dit \u{0441}\u{0430}rd",
        // Any run of whitespace between the words: `whitespace_insensitive` by default.
        "What is a credit  card",
        "What is a credit\\n\\tcard",
    ]
    .iter()
    .all(|prompt| {
        let body =
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{prompt}"}}]}}"#);
        matches!(
            b.policy.inspect(RouteKind::Messages, body.as_bytes()).unwrap().decision(),
            Decision::Reject(r) if r.message == "Rejected due to inappropriate content"
        )
    })
}

#[test]
fn builtin_matches_the_seed() {
    let gw = Gateway::builtin(&Env::from_pairs([("ANTHROPIC_API_KEY", "sk-ant-gw")])).unwrap();
    assert_eq!(gw.listen.to_string(), "127.0.0.1:8080");
    let b = &gw.backends[0];
    assert!(matches!(b.spec.credentials(), Credentials::Inject(k) if k.expose() == "sk-ant-gw"));
    assert!(rejects_credit_card(b));
    assert_eq!(
        b.routes.classify("/v1/messages/count_tokens?beta=true"),
        RouteKind::CountTokens
    );
    assert_eq!(b.routes.classify("/v1/models"), RouteKind::Models);
    assert_eq!(b.routes.classify("/"), RouteKind::Passthrough);
    // Without the variable, clients' own credentials pass through.
    let gw = Gateway::builtin(&Env::from_pairs::<[(&str, &str); 0], _, _>([])).unwrap();
    assert_eq!(gw.backends[0].spec.credentials(), &Credentials::Passthrough);
    assert!(gw.warnings.iter().any(|n| n.contains("ANTHROPIC_API_KEY")));
}

/// The native equivalent of the seed's pinned, guarded manifests.
const PINNED_NATIVE: &str = r#"
listen: 127.0.0.1:8080
backends:
  - name: anthropic
    provider: anthropic
    api_key: $ANTHROPIC_API_KEY
    model: {pin: claude-opus-4-6}
    routes: {/v1/messages: Messages, "*": Passthrough}
    guards:
      request:
        - name: "promptGuard.request[0]"
          regex: ["credit card"]
          action: reject
          message: Rejected due to inappropriate content
routes: [{prefix: /, backend: anthropic}]
"#;

#[test]
fn manifests_and_their_native_equivalent_are_one_model() {
    let env = Env::from_pairs([("ANTHROPIC_API_KEY", "sk-ant-x")]);
    let k8s = Gateway::parse("m.yaml", &seed("guard-pinned"), &env).unwrap();
    let native = Gateway::parse("n.yaml", PINNED_NATIVE, &env).unwrap();
    assert_eq!(k8s.summary(), native.summary());
    assert_eq!(k8s.coverage(), native.coverage());
    assert_eq!(k8s.listen, native.listen);
    // Only the manifests carry notes on the cluster details agw ignores.
    assert!(native.notes.is_empty(), "{:?}", native.notes);
    // Without the key: the same loud warning from both.
    let k8s = Gateway::parse("m.yaml", &seed("guard-pinned"), &Env::default()).unwrap();
    let native = Gateway::parse("n.yaml", PINNED_NATIVE, &Env::default()).unwrap();
    assert_eq!(k8s.warnings, native.warnings);
    assert_eq!(k8s.warnings.len(), 1);
}

#[test]
fn listen_takes_names_and_ipv6() {
    assert_eq!(
        resolve_listen("[::1]:8080").unwrap().to_string(),
        "[::1]:8080"
    );
    assert_eq!(resolve_listen("[::]:0").unwrap().port(), 0);
    let local = resolve_listen("localhost:8080").unwrap();
    assert!(local.ip().is_loopback() && local.port() == 8080, "{local}");
    for bad in ["localhost", "localhost:http", ":80", "nope.invalid.:80"] {
        assert!(resolve_listen(bad).is_err(), "{bad}");
    }
    let gw = Gateway::parse(
        "c.yaml",
        "listen: localhost:0\nbackends: [{name: a, provider: anthropic}]",
        &Env::default(),
    )
    .unwrap();
    assert!(gw.listen.ip().is_loopback());
}

#[test]
fn errors_never_echo_secrets() {
    let key = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
    for text in [
        format!("backends: [{{name: a, provider: {key}}}]"),
        format!("listen: {key}\nbackends: [{{name: a, provider: anthropic}}]"),
        format!("backends: [{{name: a, provider: anthropic, timeouts: {{connect_secs: {key}}}}}]"),
        format!("backends: [{{name: a, provider: anthropic, base_url: 'http://u:{key}@h'}}]"),
    ] {
        let e = Gateway::parse("c.yaml", &text, &Env::default()).unwrap_err();
        let s = e.to_string();
        assert!(!s.contains("AbCdEfGh"), "{s}");
        assert!(s.starts_with("c.yaml:1"), "the location stays: {s}");
    }
    let mut gw = Gateway::builtin(&Env::default()).unwrap();
    let e = gw
        .apply(&Overrides {
            listen: None,
            base_urls: vec![(None, "ftp://user:hunter2@host".into())],
        })
        .unwrap_err();
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn seed_manifests_behave_like_the_builtin() {
    let env = Env::from_pairs([("ANTHROPIC_API_KEY", "sk-ant-from-env")]);
    for (name, guarded, pinned) in [
        ("guard-any-model", true, None),
        ("guard-pinned", true, Some("claude-opus-4-6")),
        ("no-guard", false, Some("claude-opus-4-6")),
    ] {
        let gw = Gateway::parse(name, &seed(name), &env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(gw.listen.port(), 8080, "{name}");
        assert_eq!(gw.backends.len(), 1);
        let b = &gw.backends[0];
        assert_eq!(b.name, "anthropic");
        assert!(
            matches!(b.spec.credentials(), Credentials::Inject(k) if k.expose() == "sk-ant-from-env")
        );
        assert_eq!(rejects_credit_card(b), guarded, "{name}");
        // The exact semantics of the original regex: case-sensitive.
        let upper = br#"{"messages":[{"role":"user","content":"Credit Card"}]}"#;
        assert!(
            b.policy
                .inspect(RouteKind::Messages, upper)
                .unwrap()
                .is_allow()
        );
        match pinned {
            Some(m) => assert_eq!(b.model.mode(), &agw_core::model::ModelMode::Pin(m.into())),
            None => assert!(b.model.is_noop()),
        }
        assert_eq!(
            b.routes.classify("/v1/messages?beta=true"),
            RouteKind::Messages
        );
        assert_eq!(b.routes.classify("/v1/models"), RouteKind::Passthrough);
        assert_eq!(gw.backend_for("/v1/messages"), Some(0));
        assert!(
            gw.notes.iter().any(|n| n.contains("gatewayClassName")),
            "{:?}",
            gw.notes
        );
    }
    // Without the variable the Secret cannot be expanded: passthrough, with a note.
    let gw = Gateway::parse("x", &seed("guard-pinned"), &Env::default()).unwrap();
    assert_eq!(gw.backends[0].spec.credentials(), &Credentials::Passthrough);
}

#[test]
fn unknown_fields_are_named_with_a_location() {
    let text = "listen: 127.0.0.1:9000\nbackends:\n  - name: a\n    provider: anthropic\n    modle:\n      pin: x\n";
    let e = Gateway::parse("agw.yaml", text, &Env::default()).unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("agw.yaml:5:"), "{s}");
    assert!(
        s.contains("unknown field `modle`") && s.contains("did you mean `model`?"),
        "{s}"
    );

    let manifest = seed("guard-any-model").replace("      promptGuard:", "      promptGaurd:");
    let e = Gateway::parse("m.yaml", &manifest, &Env::default()).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("promptGaurd") && s.contains("did you mean `promptGuard`?"),
        "{s}"
    );
    assert!(e.line.is_some_and(|l| l > 40), "{s}");

    let manifest = seed("guard-any-model").replace("kind: HTTPRoute", "kind: GRPCRoute");
    let e = Gateway::parse("m.yaml", &manifest, &Env::default()).unwrap_err();
    assert!(
        e.to_string().contains("kind `GRPCRoute` is not supported"),
        "{e}"
    );
}

#[test]
fn native_errors_name_the_field() {
    let cases = [
        ("backends: []", "at least one backend"),
        (
            r#"backends: [{name: 'anth"ropic', provider: anthropic}]"#,
            "must not contain quotes, backslashes or control characters",
        ),
        (
            "backends: [{name: a, provider: anthropic, guards: {request: [{name: \"cc\\\"} 1\\nforged{x=\\\"y\", regex: [x]}]}}]",
            "rule name `cc\\\"} 1\\nforged{x=\\\"y`: must not contain quotes",
        ),
        (
            "listen: nope\nbackends: [{name: a, provider: anthropic}]",
            "listen:",
        ),
        (
            "backends: [{name: a, provider: anthropic, base_url: 'ftp://x'}]",
            "base_url",
        ),
        (
            "backends: [{name: a, provider: claude}]",
            "unknown variant `claude`",
        ),
        (
            "backends: [{name: a, provider: openai_compatible}]",
            "needs a base_url",
        ),
        (
            "backends: [{name: a, provider: anthropic, guards: {request: [{regex: ['(']}]}}]",
            "rule `rule-1`: invalid regex `(`",
        ),
        (
            "backends: [{name: a, provider: anthropic, guards: {request: [{detectors: [credit_crad]}]}}]",
            "did you mean `credit_card`?",
        ),
        (
            "backends: [{name: a, provider: anthropic, routes: {/v1/messages: Mesages}}]",
            "unknown route kind `Mesages`",
        ),
        // A response rule's error is the `response` list's, located there (it was reported
        // as the tool rules', without a line); a tool rule's is the `tools` list's.
        (
            "backends:
  - name: a
    provider: anthropic
    guards:
      response:
        - {name: r1, detectors: [anthropic_api_key], action: mask}",
            "c.yaml:5: response: backend `a`: rule `r1`: detectors: unknown detector",
        ),
        (
            "backends:
  - name: a
    provider: anthropic
    guards:
      response: [{name: r1, regex: ['(']}]",
            ": response: backend `a`: rule `r1`: invalid regex",
        ),
        (
            "backends: [{name: a, provider: anthropic, guards: {tools: [{name: t, tool: Bash, argument: command}]}}]",
            "tools: backend `a`: tool rule `t`: `argument` needs a `regex`",
        ),
        (
            "backends: [{name: a, provider: anthropic, credentials: inject}]",
            "inject needs",
        ),
        (
            "backends: [{name: a, provider: anthropic, api_key: '${NOPE_X}x'}]",
            "`NOPE_X` is not set",
        ),
        (
            "backends: [{name: a, provider: anthropic}]\nroutes: [{prefix: /, backend: b}]",
            "no known backend `b`",
        ),
        (
            "backends: [{name: a, provider: anthropic, api_key: \"sk-ant\\nsecond-line\"}]",
            "the key contains characters an HTTP header cannot carry",
        ),
    ];
    for (text, want) in cases {
        let e = Gateway::parse("c.yaml", text, &Env::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

/// The team sections are checked as `serve` checks them when they are read, so `agw check`
/// and a reload refuse what would not start (found by the ops review: both said ok, and the
/// next restart failed). Each error is one line, located, and shows no secret.
#[test]
fn team_sections_are_checked_when_read() {
    let base = "backends: [{name: a, provider: anthropic, api_key: k}]\n";
    for (extra, want) in [
        (
            "limits:\n  per_key: {requests_per_minute: 0}\n",
            "c.yaml:3: limits.per_key.requests_per_minute: 0",
        ),
        // The key in its own section, not the first of that name.
        (
            "limits:\n  per_team: {requests_per_minute: 5}\n  per_key: {requests_per_minute: 0}\n",
            "c.yaml:4: limits.per_key.requests_per_minute: 0",
        ),
        (
            "limits:\n  global:\n    budget: {usd_per_day: -5}\n",
            "c.yaml:4: limits.global.budget.usd_per_day: -5",
        ),
        (
            "auth: {keys: {file: k.json}}\nlimits:\n  per_key:\n    budget: {usd_per_day: 5}\n",
            "c.yaml:3: limits: a dollar budget (usd_per_day, usd_per_month) needs `prices`",
        ),
        ("auth: {keys: {}}\n", "c.yaml:2: auth.keys: set `file`"),
        (
            "auth:\n  jwt: {issuer: i, audience: a, jwks_file: /nonexistent/jwks.json}\n",
            "c.yaml:3: auth.jwt: /nonexistent/jwks.json: ",
        ),
        (
            "auth:\n  jwt: {issuer: i, audience: a, jwks_file: j.json, jwks_url: 'https://i/j'}\n",
            "c.yaml:3: auth.jwt: set exactly one of jwks_file and jwks_url",
        ),
        (
            "auth:\n  jwt: {issuer: i, audience: a, jwks_url: 'http://idp.example.com/jwks'}\n",
            "only https URLs",
        ),
        (
            "redis: {url: 'http://user:s3cretpw@host'}\n",
            "c.yaml:2: redis.url: `http://***@host` is not a redis://",
        ),
        (
            "redis: {url: 'rediss://:s3cretpw@host:6380', ca_file: /nonexistent/ca.pem}\n",
            "c.yaml:2: redis.ca_file: /nonexistent/ca.pem: ",
        ),
        (
            "redis: {url: 'redis://:s3cretpw@host:6379', ca_file: Cargo.toml}\n",
            "c.yaml:2: redis.ca_file: Cargo.toml: holds no PEM certificate",
        ),
        (
            "redis: {ca_file: Cargo.toml}\n",
            "c.yaml:2: redis.ca_file: set without redis.url",
        ),
    ] {
        let text = format!("{base}{extra}");
        let e = Gateway::parse("c.yaml", &text, &Env::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{extra}: {e}");
        assert!(!e.contains("s3cretpw") && !e.contains('\n'), "{e}");
    }
    // A Redis URL that is unset is no Redis (limits in memory), not an error.
    let text =
        format!("{base}redis: {{url: '${{REDIS_URL}}'}}\nauth: {{keys: {{file: k.json}}}}\n");
    assert!(Gateway::parse("c.yaml", &text, &Env::default()).is_ok());
}

#[test]
fn native_full_example() {
    let text = r#"
listen: 127.0.0.1:0
limits: {max_body_bytes: 1000, shutdown_grace_secs: 5}
backends:
  - name: local
    provider: openai_compatible
    base_url: http://${HOST}:8000
    api_key_file: KEYFILE
    model: {aliases: {"gpt-*": qwen}, allow: [qwen]}
    timeouts: {connect_secs: 1.5, response_secs: 20}
    guards:
      request:
        - name: secrets
          detectors: [aws_access_key, github_token]
          action: mask
          fields: [tool_output, tool_input]
          scope: latest
        - keywords: [project x]
          case_insensitive: true
          whole_word: true
          action: audit
routes:
  - {prefix: /, backend: local}
"#;
    let dir = std::env::temp_dir().join(format!("agw-key-{}", std::process::id()));
    std::fs::write(&dir, "sk-local\n").unwrap();
    let text = text.replace("KEYFILE", &dir.display().to_string());
    let gw = Gateway::parse("c.yaml", &text, &Env::from_pairs([("HOST", "127.0.0.1")])).unwrap();
    std::fs::remove_file(&dir).unwrap();
    let b = &gw.backends[0];
    assert_eq!(b.spec.base_url(), "http://127.0.0.1:8000/");
    assert!(matches!(b.spec.credentials(), Credentials::Inject(k) if k.expose() == "sk-local"));
    assert_eq!(b.model.resolve("gpt-4o"), "qwen");
    assert_eq!(
        b.routes.classify("/v1/chat/completions"),
        RouteKind::Completions
    );
    assert_eq!(b.policy.rules().count(), 2);
    assert_eq!(gw.max_body_bytes, 1000);
    assert_eq!(b.upstream.connect_timeout.as_millis(), 1500);
}

#[test]
fn overrides_apply_to_every_form() {
    let env = Env::default();
    for text in [seed("guard-pinned"), native::BUILTIN.to_owned()] {
        let mut gw = Gateway::parse("x", &text, &env).unwrap();
        gw.apply(&Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            base_urls: vec![(None, "http://127.0.0.1:9".into())],
        })
        .unwrap();
        assert_eq!(gw.listen.port(), 0);
        assert_eq!(gw.backends[0].spec.base_url(), "http://127.0.0.1:9/");
        let e = gw
            .apply(&Overrides {
                listen: None,
                base_urls: vec![(Some("nope".into()), "http://x".into())],
            })
            .unwrap_err();
        assert!(e.to_string().contains("no backend named `nope`"));
    }
}

#[test]
fn prefixes_match_on_segments() {
    assert!(path_has_prefix("/anything", "/"));
    assert!(path_has_prefix("/api/v1", "/api"));
    assert!(path_has_prefix("/api", "/api/"));
    assert!(!path_has_prefix("/apix", "/api"));
}

#[test]
fn rule_options_from_yaml() {
    let text = r#"
backends:
  - name: a
    provider: anthropic
    guards:
      request:
        - name: cards
          keywords: ["credit card"]
          case_insensitive: true
          whitespace_insensitive: true
          confusables: true
"#;
    let gw = Gateway::parse("c.yaml", text, &Env::default()).unwrap();
    let policy = &gw.backends[0].policy;
    for prompt in [
        "credit card",
        "Credit\\n\\t  CARD",
        "\u{0441}r\u{0435}dit \u{0441}\u{0430}rd",
    ] {
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{prompt}"}}]}}"#);
        let v = policy
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap();
        assert!(
            matches!(v.decision(), Decision::Reject(_)),
            "{prompt}: {:?}",
            v.decision()
        );
    }
    // Unset, look-alikes match for phrases with a word of five letters or more, not for short
    // keywords (`сор`, Russian, reads `cop`); set, the setting holds.
    for (rule, prompt, rejected) in [
        ("{keywords: [\"credit card\"]}", "\u{0441}redit card", true),
        (
            "{regex: [\"kubectl\\\\s+delete\"]}",
            "kub\u{0435}ctl delete",
            true,
        ),
        ("{keywords: [\"cop\"]}", "\u{0441}\u{043e}\u{0440}", false),
        (
            "{keywords: [\"cop\", \"credit card\"]}",
            "\u{0441}\u{043e}\u{0440}",
            false,
        ),
        (
            "{keywords: [\"credit card\"], confusables: false}",
            "\u{0441}redit card",
            false,
        ),
        (
            "{keywords: [\"cop\"], confusables: true}",
            "\u{0441}\u{043e}\u{0440}",
            true,
        ),
        // Unset, a space in a phrase matches any run of whitespace, as a model reads it
        // (held-out guard cases: `credit  card` passed the seed's own rule); set false, holds.
        ("{regex: [\"credit card\"]}", "credit  card", true),
        ("{regex: [\"credit card\"]}", "credit\\n\\ncard", true),
        (
            "{keywords: [\"credit card\"]}",
            "credit \u{3000}\\tcard",
            true,
        ),
        ("{keywords: [\"credit card\"]}", "creditcard", false),
        (
            "{regex: [\"credit card\"], whitespace_insensitive: false}",
            "credit  card",
            false,
        ),
    ] {
        let text =
            format!("backends: [{{name: a, provider: anthropic, guards: {{request: [{rule}]}}}}]");
        let gw = Gateway::parse("c.yaml", &text, &Env::default()).unwrap();
        let body = format!(r#"{{"messages":[{{"role":"user","content":"{prompt}"}}]}}"#);
        let v = gw.backends[0]
            .policy
            .inspect(RouteKind::Messages, body.as_bytes())
            .unwrap();
        assert_eq!(
            matches!(v.decision(), Decision::Reject(_)),
            rejected,
            "{rule} {prompt}"
        );
    }
    let e = Gateway::parse(
        "c.yaml",
        "backends: [{name: a, provider: anthropic, guards: {request: [{detectors: [email], confusables: true}]}}]",
        &Env::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("go with `regex` or `keywords`"),
        "{e}"
    );
    // An access list without the team layers was enforced by nothing (same round).
    let e = Gateway::parse(
        "c.yaml",
        "backends: [{name: a, provider: anthropic, access: {models: ['claude-*']}}]",
        &Env::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("`access` needs the team features"),
        "{e}"
    );
    assert!(
        Gateway::parse(
            "c.yaml",
            "metrics: {}\nbackends: [{name: a, provider: anthropic, access: {models: ['claude-*']}}]",
            &Env::default(),
        )
        .is_ok()
    );
    // `whole_word` on a regex was ignored silently (second round of the twelfth session).
    let e = Gateway::parse(
        "c.yaml",
        "backends: [{name: a, provider: anthropic, guards: {request: [{regex: ['ab+a'], whole_word: true}]}}]",
        &Env::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("`whole_word` goes with `keywords`"),
        "{e}"
    );
}

/// Tool-call rules are listed with the response guards wherever a configuration is summarised
/// (`agw check`, the startup line, `/config`): an operator saw none of them before.
#[test]
fn tool_rules_are_in_the_summary() {
    let text = r#"
backends:
  - name: anthropic
    provider: anthropic
    guards:
      response:
        - {name: cards, detectors: [credit_card], action: mask}
      tools:
        - {name: no-k8s-deletes, tool: Bash, argument: command, regex: 'kubectl\s+delete', message: no}
        - {name: watch-writes, tool: Write, action: audit}
"#;
    let gw = Gateway::parse("c.yaml", text, &Env::from_pairs([("UNUSED", "")])).unwrap();
    let line = &gw.summary()[0];
    assert!(
        line.ends_with(
            "response guards: cards: mask, no-k8s-deletes: reject tool Bash, watch-writes: audit tool Write"
        ),
        "{line}"
    );
}

/// A `redis` section whose URL expands to nothing is named, with its variable, for `agw keys`
/// to refuse on and for `agw serve` and `agw check` to say (operations review).
#[test]
fn an_empty_redis_url_is_named() {
    let yaml = |url: &str| {
        format!(
            "auth: {{keys: {{file: /tmp/keys.json}}}}\nredis:\n  url: {url}\n\
             backends: [{{name: a, provider: anthropic}}]\n"
        )
    };
    // (url in the YAML, environment, the line wanted)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: &[Case<'_>] = &[
        (
            "'${REDIS_URL}'",
            &[],
            Some("redis.url is empty (is REDIS_URL set?)"),
        ),
        (
            "$SHARED",
            &[("SHARED", "")],
            Some("redis.url is empty (is SHARED set?)"),
        ),
        ("''", &[], Some("redis.url is empty")),
        (
            "${REDIS_URL}",
            &[("REDIS_URL", "redis://127.0.0.1:6379/")],
            None,
        ),
    ];
    for (url, vars, want) in cases {
        let env = Env::from_pairs(vars.iter().copied());
        let gw = Gateway::parse("t.yaml", &yaml(url), &env).unwrap();
        assert_eq!(gw.redis_url_empty.as_deref(), *want, "{url}");
        assert_eq!(
            gw.notes.iter().any(|n| n.starts_with("redis.url is empty")),
            want.is_some(),
            "{url}: {:?}",
            gw.notes
        );
    }
    let gw = Gateway::parse(
        "t.yaml",
        "backends: [{name: a, provider: anthropic}]\n",
        &Env::default(),
    )
    .unwrap();
    assert_eq!(gw.redis_url_empty, None, "no redis section");
}

/// Black-box review: an empty access list (`teams: []`) admitted everyone. It is refused in
/// one line naming the field, by `agw check`, `agw serve` and a reload alike (all parse here).
#[test]
fn an_empty_access_list_is_refused() {
    for field in ["identities", "teams", "groups", "models"] {
        let text = format!(
            "metrics: {{}}\nbackends:\n  - name: a\n    provider: anthropic\n    access: {{{field}: []}}\n"
        );
        let e = Gateway::parse("c.yaml", &text, &Env::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "access.{field}: backend `a`: an empty list admits no one; remove `{field}` to admit everyone"
            )),
            "{e}"
        );
        assert!(e.starts_with("c.yaml:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
