//! `${VAR}` expansion from the environment (or a map, in tests).

use std::collections::HashMap;

/// Where `${VAR}` references are looked up.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Option<HashMap<String, String>>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self { vars: None }
    }

    /// A fixed set of variables (for tests).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// A variable's value; unset and empty are the same.
    pub fn get(&self, name: &str) -> Option<String> {
        let v = match &self.vars {
            Some(m) => m.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        v.filter(|v| !v.is_empty())
    }

    /// If `value` is exactly one reference (`$VAR` or `${VAR}`), the variable's name.
    pub fn reference(value: &str) -> Option<&str> {
        let v = value.trim();
        let name = v
            .strip_prefix("${")
            .and_then(|r| r.strip_suffix('}'))
            .or_else(|| v.strip_prefix('$'))?;
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        valid.then_some(name)
    }

    /// Expands every `${VAR}` in `value`; an unset variable is an error naming it.
    pub fn expand(&self, value: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = value;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let Some(end) = rest[i..].find('}') else {
                return Err(format!("unterminated `${{` in `{value}`"));
            };
            let name = &rest[i + 2..i + end];
            match self.get(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable `{name}` is not set")),
            }
            rest = &rest[i + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_expansion() {
        assert_eq!(
            Env::reference("$ANTHROPIC_API_KEY"),
            Some("ANTHROPIC_API_KEY")
        );
        assert_eq!(Env::reference("${A_1}"), Some("A_1"));
        assert_eq!(Env::reference("sk-ant-x"), None);
        assert_eq!(Env::reference("$1"), None);
        let env = Env::from_pairs([("HOST", "localhost"), ("EMPTY", "")]);
        assert_eq!(
            env.expand("http://${HOST}:8000").unwrap(),
            "http://localhost:8000"
        );
        assert!(env.expand("${EMPTY}").unwrap_err().contains("`EMPTY`"));
        assert!(env.expand("${NOPE").is_err());
    }
}
