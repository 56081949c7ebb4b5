//! The team configurations (issue 11): agw with client keys, usage and cost, metrics and a
//! per-key rate limit, once with the limiter in memory and once in Redis; their config files,
//! client keys and Redis server.

use std::path::Path;
use std::time::Duration;

use crate::procs::{self, Redis, Scratch};

/// Requests per minute per key: never reached, so the limiter counts on every request and
/// never rejects one.
const REQUESTS_PER_MINUTE: u64 = 1_000_000_000;

/// How long `agw keys create` may take.
const KEYS_CREATE: Duration = Duration::from_secs(30);

/// A team configuration written to disk, and the client key created for it.
#[derive(Debug)]
pub struct TeamConfig {
    /// The config file, for `agw serve --config`.
    pub file: String,
    /// The key to send as `x-api-key`.
    pub key: String,
}

/// What the team targets need, kept until the end of the run: dropping it stops Redis and
/// removes the config files and the key file.
#[derive(Debug)]
pub struct TeamSetup {
    pub memory: TeamConfig,
    pub redis: TeamConfig,
    pub redis_server: Redis,
    _scratch: Scratch,
}

impl TeamSetup {
    /// Starts Redis (pinned to `core`), writes both configs against the mock at `mock_url`, and
    /// creates a key `bench` in each with `agw`.
    pub fn new(agw: &Path, mock_url: &str, core: Option<usize>) -> Result<Self, String> {
        let scratch = Scratch::new()?;
        let redis_server = Redis::start(core)?;
        let write = |name: &str, redis: Option<&str>| -> Result<TeamConfig, String> {
            let keys = scratch.path.join(format!("{name}-keys.json"));
            let file = scratch.path.join(format!("{name}.yaml"));
            let keys = keys
                .to_str()
                .ok_or("the temporary directory is not UTF-8")?;
            let text = config(mock_url, keys, redis);
            std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
            let file = file
                .to_str()
                .ok_or("the temporary directory is not UTF-8")?
                .to_owned();
            let out = procs::output(
                agw,
                &["keys", "--config", &file, "create", "--name", "bench"],
                KEYS_CREATE,
            )?;
            let key = out
                .lines()
                .last()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .ok_or_else(|| format!("agw keys create printed no key for {file}"))?
                .to_owned();
            Ok(TeamConfig { file, key })
        };
        let memory = write("team-memory", None)?;
        let redis = write(
            "team-redis",
            Some(&format!("redis://{}", redis_server.addr)),
        )?;
        Ok(Self {
            memory,
            redis,
            redis_server,
            _scratch: scratch,
        })
    }
}

/// agw's configuration for a team, like `agw-bin/examples/team.yaml`: the built-in default's
/// backend and guard in front of the mock, client keys required, a per-key rate limit, prices,
/// metrics; the limiter in `redis` when given, else in memory.
fn config(mock_url: &str, keys_file: &str, redis: Option<&str>) -> String {
    let redis = redis.map_or(String::new(), |url| format!("redis: {{url: {url:?}}}\n"));
    format!(
        r#"listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
auth:
  keys: {{file: {keys_file:?}}}
  allow_unauthenticated: false
{redis}limits:
  per_key: {{requests_per_minute: {REQUESTS_PER_MINUTE}}}
prices:
  - {{model: "claude-opus-*", input: 15, output: 75, cache_write: 18.75, cache_read: 1.5}}
  - {{model: "claude-sonnet-*", input: 3, output: 15, cache_write: 3.75, cache_read: 0.3}}
metrics: {{}}
backends:
  - name: anthropic
    provider: anthropic
    base_url: {mock_url:?}
    api_key: sk-ant-loadbench-upstream
    routes:
      /v1/messages: Messages
      /v1/messages/count_tokens: CountTokens
      /v1/models: Models
      "*": Passthrough
    guards:
      request:
        - name: credit-card
          regex: ["credit card"]
          action: reject
          message: Rejected due to inappropriate content
"#
    )
}
